"""The audit's AWS part against moto (IAM enforcement on): role last use, runtime key age and use.

moto records a role's last use when credentials from AssumeRole make a call, and a key's when the
key signs one, with the real clock; the audit's clock is moved forward to make them old.

The audit reads as moto's admin: moto 5.2.5 resolves the resource of an IAM call only for roles
(`moto/iam/responses.py` `_determine_resource`) and checks every other IAM call against `*`, so a
policy scoped to `user/rentagpu/ENV/*`, like the read-only CI roles', is always denied there. That
the drift role may make every call the audit makes is shown on the policy document instead: the
calls are recorded from boto3 and matched against its statements, action and resource ARN."""

from __future__ import annotations

import datetime
import fnmatch

from infra.core import names
from infra.core.secrets import mask_id
from infra.stages.aws import iam as iam_documents
from infra.tools.audit.aws import aws_source, stack_roles
from infra.tools.audit.findings import Severity
from tests.tools.audit.support import AwsStack, kinds, now_utc


def _audit(stack: AwsStack, days_later: int = 0):
    scope = stack.scope
    later = type(scope)(scope.config, now_utc() + datetime.timedelta(days=days_later), 7, 90)
    return aws_source(later, {"AWS_ENDPOINT_URL": stack.moto.endpoint_url})


def test_audit_aws_roles_in_use_are_clean_and_their_last_use_is_listed(aws_stack) -> None:
    stack = aws_stack("prod")
    stack.create()
    for purpose in stack_roles(stack.scope):
        stack.use_role(purpose)
    result = _audit(stack)
    assert result.findings == [] and result.not_checked == []
    lines = [a.text for a in result.activity]
    assert len(lines) == 4  # prod: deploy, preview, drift, runtime
    assert all(f"last used {now_utc():%Y-%m-%d}" in line for line in lines)


def test_audit_aws_a_role_unused_for_longer_than_the_threshold_is_low(aws_stack) -> None:
    stack = aws_stack("dev")
    stack.create()
    for purpose in stack_roles(stack.scope):
        stack.use_role(purpose)
    result = _audit(stack, days_later=120)
    assert kinds(result.findings) == ["aws-role-unused"] * 4  # dev: deploy, drift, preview, runtime
    finding = result.findings[0]
    assert finding.severity is Severity.LOW and "last used 120 days ago" in finding.detail
    assert finding.command.startswith("aws iam get-role --role-name rentagpu-dev-")


def test_audit_aws_a_role_never_used_is_reported_once_it_is_old(aws_stack) -> None:
    stack = aws_stack("prod")
    stack.create()
    assert _audit(stack).findings == []  # new and unused: nothing yet
    result = _audit(stack, days_later=100)
    assert kinds(result.findings) == ["aws-role-unused"] * 4
    assert "never used since it was created 100 days ago" in result.findings[0].detail


def test_audit_aws_a_missing_role_is_medium(aws_stack) -> None:
    stack = aws_stack("prod")
    stack.create(skip=("drift",))
    for purpose in ("deploy", "runtime"):
        stack.use_role(purpose)
    (finding,) = _audit(stack).findings
    assert (finding.kind, finding.severity) == ("aws-principal-missing", Severity.MEDIUM)
    assert finding.subject == "role `rentagpu-prod-drift`"
    assert "pulumi up --stack prod" in finding.command


def test_audit_aws_access_key_in_use_and_young_is_clean(aws_stack) -> None:
    stack = aws_stack("dev", auth="access-key")
    stack.create()
    for purpose in stack_roles(stack.scope):
        stack.use_role(purpose)
    key = stack.add_key()
    stack.use_key(key)
    result = _audit(stack)
    assert result.findings == [] and result.not_checked == []
    (line,) = [a.text for a in result.activity if "access key" in a.text]
    assert mask_id(key.access_key_id) in line and "Active" in line
    assert key.access_key_id not in line


def test_audit_aws_access_key_older_than_max_age_and_unused(aws_stack) -> None:
    stack = aws_stack("dev", auth="access-key")
    stack.create()
    for purpose in stack_roles(stack.scope):
        stack.use_role(purpose)
    stack.add_key()  # never used
    result = _audit(stack, days_later=91)  # accessKeyMaxAgeDays defaults to 90
    key_findings = [f for f in result.findings if f.kind.startswith("aws-key")]
    assert kinds(key_findings) == ["aws-key-too-old", "aws-key-unused"]
    too_old = next(f for f in key_findings if f.kind == "aws-key-too-old")
    assert too_old.severity is Severity.MEDIUM and "accessKeyMaxAgeDays is 90" in too_old.detail
    assert too_old.command == "python -m infra rotate aws-key --stack dev"


def test_audit_aws_two_access_keys_mean_an_unfinished_rotation(aws_stack) -> None:
    stack = aws_stack("dev", auth="access-key")
    stack.create()
    for purpose in stack_roles(stack.scope):
        stack.use_role(purpose)
    first, second = stack.add_key(), stack.add_key()
    stack.use_key(first)
    stack.use_key(second)
    (finding,) = _audit(stack).findings
    assert (finding.kind, finding.severity) == ("aws-key-extra", Severity.MEDIUM)
    assert mask_id(first.access_key_id) in finding.detail
    assert first.access_key_id not in finding.detail
    assert finding.command == "python -m infra rotate aws-key --stack dev --resume"


def test_audit_aws_refused_credentials_are_not_checked(aws_stack, monkeypatch) -> None:
    stack = aws_stack("prod")
    stack.create()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + "X" * 16)
    result = _audit(stack)
    (refused,) = result.not_checked
    assert refused.what == "roles" and "AWS refused iam:GetRole" in refused.reason
    assert result.findings == []


def test_audit_aws_makes_only_calls_the_read_only_ci_roles_may_make(aws_stack, monkeypatch) -> None:
    import infra.tools.audit.aws as audit_aws
    from infra.tools.runbook.aws_keys import AwsAccess

    calls: list[tuple[str, dict]] = []

    class Recording(AwsAccess):
        def _new_client(self, service, key):
            client = super()._new_client(service, key)
            client.meta.events.register(
                "before-parameter-build.iam.*",
                lambda model, params, **_: calls.append((model.name, params)),
            )
            return client

    monkeypatch.setattr(audit_aws, "AwsAccess", Recording)
    stack = aws_stack("dev", auth="access-key")
    stack.create()
    stack.use_key(stack.add_key())
    _audit(stack)
    account, env = stack.moto.account_id, "dev"
    policy = iam_documents.read_only_policy(account, env, "acme-ml-rentagpu-dev")
    path = names.iam_path(env)
    seen = set()
    for operation, params in calls:
        if "RoleName" in params:
            arn = f"arn:aws:iam::{account}:role{path}{params['RoleName']}"
        else:
            arn = f"arn:aws:iam::{account}:user{path}{names.runtime_user_name(env)}"
        action = f"iam:{operation}"
        assert any(
            action in statement["Action"]
            and any(fnmatch.fnmatchcase(arn, r) for r in statement["Resource"])
            for statement in policy["Statement"]
        ), f"the read-only CI roles may not call {action} on {arn}"
        seen.add(action)
    assert seen == {"iam:GetRole", "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed"}
