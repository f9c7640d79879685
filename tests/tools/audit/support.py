"""What the audit tests share: a fixed "now", scopes over the test stacks, dates relative to now,
and a stack's IAM roles and runtime user in moto."""

from __future__ import annotations

import datetime
import json

from infra.core import names
from infra.tools.audit.aws import stack_roles
from infra.tools.audit.findings import AuditScope, Finding
from tests.fakes.aws_fixtures import Credentials, MotoServer
from tests.stacks import stack_config

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def scope_for(
    stack: str, *, since: int = 7, unused: int = 90, now: datetime.datetime = NOW, **config: object
) -> AuditScope:
    return AuditScope(stack_config(stack, **config), now, since, unused)


def days_ago(days: float, now: datetime.datetime = NOW) -> datetime.datetime:
    return now - datetime.timedelta(days=days)


def iso(days: float, now: datetime.datetime = NOW) -> str:
    """A GitHub timestamp `days` before now."""
    return days_ago(days, now).strftime("%Y-%m-%dT%H:%M:%SZ")


def kinds(findings: list[Finding] | tuple[Finding, ...]) -> list[str]:
    return sorted(f.kind for f in findings)


DAY = 86_400.0


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# Lets the test's admin assume the role, so moto records a use (the real trusts are OIDC ones).
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:user/admin"},
            "Action": "sts:AssumeRole",
        }
    ],
}


class AwsStack:
    """A stack's roles (and runtime user) in moto; the tests read them as moto's admin."""

    def __init__(self, moto: MotoServer, stack: str, auth: str) -> None:
        self.moto, self.stack, self.auth = moto, stack, auth
        self.iam = moto.client("iam")
        self.scope = scope_for(stack, awsAuth=auth, now=now_utc())
        self.keys: list[Credentials] = []

    def create(self, *, skip: tuple[str, ...] = ()) -> None:
        env = self.stack
        for purpose in stack_roles(self.scope):
            if purpose not in skip:
                self.iam.create_role(
                    RoleName=names.role_name(env, purpose),
                    Path=names.iam_path(env),
                    AssumeRolePolicyDocument=json.dumps(TRUST),
                )
        if self.auth == "access-key":
            self.iam.create_user(UserName=names.runtime_user_name(env), Path=names.iam_path(env))

    def add_key(self) -> Credentials:
        key = self.iam.create_access_key(UserName=names.runtime_user_name(self.stack))
        credentials = Credentials(
            key["AccessKey"]["AccessKeyId"], key["AccessKey"]["SecretAccessKey"]
        )
        self.keys.append(credentials)
        return credentials

    def use_role(self, purpose: str) -> None:
        arn = self.iam.get_role(RoleName=names.role_name(self.stack, purpose))["Role"]["Arn"]
        found = self.moto.client("sts").assume_role(RoleArn=arn, RoleSessionName="audit-test")
        session = found["Credentials"]
        assumed = Credentials(
            session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"]
        )
        self.moto.client("sts", assumed).get_caller_identity()

    def use_key(self, key: Credentials) -> None:
        self.moto.client("sts", key).get_caller_identity()

    def delete(self) -> None:
        env = self.stack
        for purpose in ("deploy", "drift", "preview", "runtime"):
            try:
                self.iam.delete_role(RoleName=names.role_name(env, purpose))
            except self.iam.exceptions.NoSuchEntityException:
                pass
        user = names.runtime_user_name(env)
        try:
            for key in self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
                self.iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
            self.iam.delete_user(UserName=user)
        except self.iam.exceptions.NoSuchEntityException:
            pass
