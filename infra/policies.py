"""The security checklist as code: validators shared by the policy pack and the offline plan.

Every check is a pure function over a `Resource` view (type token, logical name, input props as
plain data, and the dotted paths of the inputs that are marked secret) and a `PolicyContext` (the
stack's environment and a few config values). Two adapters feed them:

- `evaluate(rendering)` (this module): the offline plan, over the resources `infra.render` records
  under Pulumi mocks; there the secret marks come from the mocks.
- `infra/policy_pack` (`pulumi preview --policy-pack infra/policy_pack`): the real engine's policy
  analyzer. There the secret marks need a detour, explained in `infra/policy_pack/pack.py`.

Props use the engine's names: camelCase for provider resources (`assumeRolePolicy`,
`canAdminsBypass`), the Python input names for the Modal hook's dynamic resources
(`environment_name`, `values`). During a preview an input that depends on an unknown output is the
`UNKNOWN` marker; checks skip such values, and `pulumi up`, which analyzes every resource again
once its inputs are known, enforces them.

Messages name the resource and say how to fix it. They never quote an input marked secret.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from infra import names
from infra.config import ENVIRONMENTS

Level = Literal["mandatory", "advisory"]

# Same default as `rentagpu:accessKeyMaxAgeDays` in infra/config.py.
DEFAULT_ACCESS_KEY_MAX_AGE_DAYS = 90


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str
    level: Literal["mandatory", "advisory"] = "mandatory"

    def as_dict(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "resource": self.resource,
            "message": self.message,
            "level": self.level,
        }


class _Unknown:
    """An input whose value a preview cannot know yet (it depends on an output not yet created)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Resource:
    """What every validator sees of one resource, whichever adapter built it."""

    type: str
    name: str
    props: Mapping[str, Any]
    secret_paths: frozenset[str] = frozenset()  # dotted input paths marked secret ('values.KEY')
    urn: str = ""

    def is_secret(self, path: str) -> bool:
        """True if the input at `path`, or a value that contains it, is marked secret."""
        parts = path.split(".")
        return any(".".join(parts[:i]) in self.secret_paths for i in range(1, len(parts) + 1))


@dataclass(frozen=True)
class PolicyContext:
    """Facts about the stack under check that no single resource carries."""

    environment: str | None  # dev or prod: what every per-environment name must carry
    github_repository: str | None = None  # OWNER/REPO the GitHub OIDC subjects must name
    access_key_max_age_days: int = DEFAULT_ACCESS_KEY_MAX_AGE_DAYS
    now: datetime | None = None  # None: the current time

    def current_time(self) -> datetime:
        return self.now or datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Type tokens
# ---------------------------------------------------------------------------------------------

GITHUB_ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
GITHUB_DEPLOYMENT_POLICY = (
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
)
GITHUB_ENVIRONMENT_SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
GITHUB_REPOSITORY_SECRET = "github:index/actionsSecret:ActionsSecret"
GITHUB_ENVIRONMENT_VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
GITHUB_REPOSITORY_VARIABLE = "github:index/actionsVariable:ActionsVariable"
GITHUB_RULESET = "github:index/repositoryRuleset:RepositoryRuleset"
AWS_ROLE = "aws:iam/role:Role"
AWS_USER = "aws:iam/user:User"
AWS_POLICY = "aws:iam/policy:Policy"
AWS_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
AWS_USER_POLICY = "aws:iam/userPolicy:UserPolicy"
AWS_GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
AWS_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
AWS_USER_POLICY_ATTACHMENT = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
AWS_ACCESS_KEY = "aws:iam/accessKey:AccessKey"
AWS_OIDC_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
AWS_BUCKET = "aws:s3/bucket:Bucket"
AWS_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"

GITHUB_SECRET_TYPES = (GITHUB_ENVIRONMENT_SECRET, GITHUB_REPOSITORY_SECRET)
# Every way the GitHub provider accepts a secret's value; `value` is the current one.
GITHUB_SECRET_VALUE_FIELDS = ("value", "valueEncrypted", "plaintextValue", "encryptedValue")
# Resources that live inside one GitHub environment, and the input that names it.
GITHUB_ENVIRONMENT_SCOPED = (
    GITHUB_ENVIRONMENT,
    GITHUB_DEPLOYMENT_POLICY,
    GITHUB_ENVIRONMENT_SECRET,
    GITHUB_ENVIRONMENT_VARIABLE,
)

MODAL_ENVIRONMENT = "ModalEnvironment"
MODAL_SECRET = "ModalSecret"
MODAL_APP_DEPLOYMENT = "ModalAppDeployment"
_MODAL_KINDS = (MODAL_ENVIRONMENT, MODAL_SECRET, MODAL_APP_DEPLOYMENT)


def modal_kind(resource: Resource) -> str | None:
    """Which Modal hook resource this is, if any.

    The hook's resources are dynamic resources: `pulumi-python:dynamic/MODULE:ModalSecret` when
    they name their type, plain `pulumi-python:dynamic:Resource` when they do not; the latter are
    told apart by their (Python-named) inputs.
    """
    suffix = resource.type.rsplit(":", 1)[-1]
    if suffix in _MODAL_KINDS:
        return suffix
    if resource.type.startswith("pulumi-python:dynamic"):
        keys = set(resource.props)  # iterating keys reads no value
        if {"secret_name", "values"} <= keys:
            return MODAL_SECRET
        if "environment_name" in keys and keys & {"restricted", "service_user_roles"}:
            return MODAL_ENVIRONMENT
        if "environment_name" in keys and "app_name" in keys:
            return MODAL_APP_DEPLOYMENT
    return None


# ---------------------------------------------------------------------------------------------
# Small helpers over props
# ---------------------------------------------------------------------------------------------


def _known(value: Any) -> bool:
    return value is not UNKNOWN


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def _display(resource: Resource) -> str:
    return resource.name


# ---------------------------------------------------------------------------------------------
# IAM documents
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    label: str  # where it sits, for messages: "inline policy 'policy'"
    statements: list[Mapping[str, Any]]


def _parse_document(label: str, value: Any) -> tuple[_Document | None, str | None]:
    """(document, problem). Unknown or absent documents give (None, None): nothing to check yet."""
    if value is None or not _known(value):
        return None, None
    document: Any = value
    if isinstance(value, str):
        try:
            document = json.loads(value)
        except ValueError:
            return (
                None,
                f"{label} is not valid JSON, so it cannot be checked; render it with json.dumps",
            )
    if not isinstance(document, Mapping):
        return None, f"{label} is not a JSON object"
    statements = _as_list(document.get("Statement"))
    if not all(isinstance(s, Mapping) for s in statements):
        return None, f"{label} has a Statement that is not an object"
    return _Document(label, statements), None


def _statement_label(document: _Document, index: int, statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid")
    which = f"'{sid}'" if isinstance(sid, str) and sid else f"#{index}"
    return f"{document.label} statement {which}"


def _is_allow(statement: Mapping[str, Any]) -> bool:
    # AWS rejects a statement without Effect; treat anything but an explicit Deny as an Allow so
    # a malformed document can never hide a grant.
    return statement.get("Effect") != "Deny"


def _principal_is_anyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return "*" in _as_list(principal.get("AWS"))
    return False


def _permission_documents(resource: Resource) -> Iterator[tuple[_Document | None, str | None]]:
    """Every permission document a resource carries (trust policies are checked separately)."""
    props = resource.props
    if resource.type in (AWS_ROLE_POLICY, AWS_USER_POLICY, AWS_GROUP_POLICY):
        yield _parse_document(f"inline policy '{props.get('name')}'", props.get("policy"))
    elif resource.type == AWS_POLICY:
        yield _parse_document(f"managed policy '{props.get('name')}'", props.get("policy"))
    elif resource.type == AWS_BUCKET_POLICY:
        yield _parse_document(f"bucket policy of '{props.get('bucket')}'", props.get("policy"))
    elif resource.type == AWS_ROLE:
        for inline in _as_list(props.get("inlinePolicies")):
            if isinstance(inline, Mapping):
                yield _parse_document(
                    f"inline policy '{inline.get('name')}' of role '{props.get('name')}'",
                    inline.get("policy"),
                )


# ---------------------------------------------------------------------------------------------
# Policy: secret inputs stay secret
# ---------------------------------------------------------------------------------------------


def check_secret_inputs(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """GitHub Actions secrets and Modal secrets must be fed from values marked secret.

    A value that is not marked secret is stored in plain text in the state file and printed by
    `pulumi preview --diff`; it usually means a credential came from a plain config key or a
    literal in code.
    """
    props = resource.props
    if resource.type in GITHUB_SECRET_TYPES:
        where = f"GitHub Actions secret '{props.get('secretName')}'"
        if resource.type == GITHUB_ENVIRONMENT_SECRET:
            where += f" of environment '{props.get('environment')}'"
        for key in GITHUB_SECRET_VALUE_FIELDS:
            if key in set(props) and props[key] is not None and not resource.is_secret(key):
                yield (
                    f"{where} is fed from `{key}`, which is not a secret: pass "
                    "pulumi.Output.secret(...) of a value read with `pulumi config set --secret`, "
                    "and rotate the credential, which is now in the state in plain text"
                )
        return

    if modal_kind(resource) != MODAL_SECRET or resource.is_secret("values"):
        return
    where = f"Modal secret '{props.get('secret_name')}' of environment '{props.get('environment_name')}'"
    values = props.get("values")
    if values is None:
        return
    if not isinstance(values, Mapping):
        yield (
            f"{where}: `values` is not a secret; wrap the whole mapping in "
            "pulumi.Output.secret(...) or mark each value secret"
        )
        return
    plain = sorted(key for key in values if not resource.is_secret(f"values.{key}"))
    if plain:
        yield (
            f"{where} is fed plain (not secret) values for {', '.join(plain)}: mark each value "
            "secret (pulumi.Output.secret, secret config, or a secret output such as an access "
            "key's `secret`), or wrap the whole mapping in pulumi.Output.secret(...)"
        )


def _applies_secret_inputs(resource: Resource) -> bool:
    return resource.type in GITHUB_SECRET_TYPES or modal_kind(resource) == MODAL_SECRET


# ---------------------------------------------------------------------------------------------
# Policy: the prod GitHub environment is protected
# ---------------------------------------------------------------------------------------------

PROD = "prod"
# prod's read-only CI credentials (drift check, preview after merge) live in this environment: no
# reviewers, but, like prod, usable from main only. Prod's drift role trusts it.
PROD_READONLY = names.readonly_environment(PROD)


def _is_prod_github_environment(resource: Resource, name: str = PROD) -> bool:
    return resource.type == GITHUB_ENVIRONMENT and resource.props.get("environment") == name


def check_prod_environment(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """The prod environment needs reviewers, no self-review, no admin bypass, custom branches.

    The deploy role trusts any job that names this environment, so the environment's protection
    rules are the only thing between a branch push and production credentials. `prod-readonly`
    has no reviewers by design, but its credentials can decrypt prod's config, so it gets the
    same branch restriction and no admin bypass.
    """
    if _is_prod_github_environment(resource, PROD_READONLY):
        yield from _branch_protection_gaps(resource, PROD_READONLY)
        return
    if not _is_prod_github_environment(resource):
        return
    props = resource.props
    where = f"GitHub environment '{PROD}' ({_display(resource)})"

    reviewers = props.get("reviewers")
    if _known(reviewers):
        count = 0
        for entry in _as_list(reviewers):
            if isinstance(entry, Mapping):
                for kind in ("users", "teams"):
                    ids = entry.get(kind)
                    count += len(_as_list(ids)) if _known(ids) else 1
        if count == 0:
            yield (
                f"{where} has no required reviewers, so any push that reaches it deploys: set "
                "rentagpu:reviewers (GitHub logins) and/or rentagpu:reviewerTeams"
            )

    prevent = props.get("preventSelfReview")
    if _known(prevent) and prevent is not True:
        yield f"{where} lets a reviewer approve their own deploy: set prevent_self_review=True"

    yield from _branch_protection_gaps(resource, PROD)


def _branch_protection_gaps(resource: Resource, name: str) -> Iterator[str]:
    """No admin bypass, and custom deployment branch policies (which the stack check pins)."""
    props = resource.props
    where = f"GitHub environment '{name}' ({_display(resource)})"
    bypass = props.get("canAdminsBypass")
    if _known(bypass) and bypass is not False:
        yield (
            f"{where} lets administrators skip its protection rules (the provider defaults "
            "can_admins_bypass to true): set can_admins_bypass=False"
        )

    policy = props.get("deploymentBranchPolicy")
    if _known(policy):
        custom = policy.get("customBranchPolicies") if isinstance(policy, Mapping) else None
        protected = policy.get("protectedBranches") if isinstance(policy, Mapping) else None
        if not isinstance(policy, Mapping) or (
            _known(custom) and _known(protected) and (custom is not True or protected is not False)
        ):
            yield (
                f"{where} does not restrict which branches may deploy: set "
                "deployment_branch_policy(protected_branches=False, custom_branch_policies=True) "
                "and declare one deployment policy for 'main'"
            )


def check_prod_deploys_from_main_only(
    resources: Sequence[Resource], ctx: PolicyContext
) -> Iterator[tuple[Resource | None, str]]:
    """Stack level: `prod` and `prod-readonly` each have exactly one deployment policy: `main`."""
    yield from _main_only(
        resources,
        ctx,
        PROD,
        "deploys would run without required reviewers; declare it (infra/github.py) before the "
        "deploy role",
    )
    yield from _main_only(
        resources,
        ctx,
        PROD_READONLY,
        "prod's drift role trusts it, and GitHub creates an environment a job names but nobody "
        "declared, unprotected; declare it (infra/github.py) before the drift role",
    )


def _main_only(
    resources: Sequence[Resource], ctx: PolicyContext, name: str, if_missing: str
) -> Iterator[tuple[Resource | None, str]]:
    environments = [r for r in resources if _is_prod_github_environment(r, name)]
    if not environments and ctx.environment == PROD:
        yield (
            None,
            f"the {PROD} stack declares no GitHub environment '{name}': {if_missing}",
        )
    for environment in environments:
        repository = environment.props.get("repository")
        patterns: list[str] = []
        for policy in resources:
            if policy.type != GITHUB_DEPLOYMENT_POLICY:
                continue
            props = policy.props
            if props.get("environment") != name:
                continue
            if _known(repository) and props.get("repository") not in (repository, UNKNOWN):
                continue
            branch, tag = props.get("branchPattern"), props.get("tagPattern")
            if tag:
                patterns.append(f"tag {tag}")
            if branch or not tag:
                patterns.append(str(branch))
        if patterns == ["main"]:
            continue
        if not patterns:
            found = "no deployment policy, so no branch can deploy and the rule is unreviewable"
        else:
            found = "deployment policies for " + ", ".join(repr(p) for p in sorted(patterns))
        yield (
            environment,
            f"GitHub environment '{name}' must deploy from main only, but it has {found}: "
            "declare exactly one RepositoryEnvironmentDeploymentPolicy with branch_pattern='main'",
        )


# ---------------------------------------------------------------------------------------------
# Policy: OIDC trust policies are pinned
# ---------------------------------------------------------------------------------------------

_EXPECTED_AUDIENCE = {
    names.GITHUB_OIDC_HOST: names.GITHUB_OIDC_AUDIENCE,
    names.MODAL_OIDC_HOST: names.MODAL_OIDC_AUDIENCE,
}
_GITHUB_SUBJECT = re.compile(
    r"^repo:(?P<repository>[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}):"
    r"(?:environment:(?P<environment>[A-Za-z0-9._-]+)|pull_request|ref:refs/heads/main)$"
)
_MODAL_SUBJECT = re.compile(
    r"^modal:workspace_id:ac-[A-Za-z0-9]+:environment_name:(?P<environment>[A-Za-z0-9._-]+)"
    r":app_name:[A-Za-z0-9._-]+:function_name:[A-Za-z0-9._-]+:container_id:(?P<container>[^:]+)$"
)
_WILDCARDS = re.compile(r"[*?]")


def _oidc_host(federated: str) -> str:
    # arn:aws:iam::ACCOUNT:oidc-provider/HOST; other federated principals are used as they are.
    return federated.split(":oidc-provider/", 1)[-1].lower()


def _condition_entries(condition: Any, key: str) -> list[tuple[str, list[Any]]]:
    """[(operator, values)] for every condition on `key` (AWS compares keys case-insensitively)."""
    entries: list[tuple[str, list[Any]]] = []
    if not isinstance(condition, Mapping):
        return entries
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            continue
        for condition_key, values in block.items():
            if isinstance(condition_key, str) and condition_key.lower() == key:
                entries.append((str(operator), _as_list(values)))
    return entries


def _trusted_environments(environment: str) -> tuple[str, str | None]:
    """The GitHub environments a stack's roles may trust: its own, and its read-only one if the
    stack has one (prod). Trusting one the program does not create would trust an environment
    GitHub creates unprotected the first time a workflow names it."""
    return environment, names.readonly_environment(environment)


def _check_subject(
    host: str, operator: str, subject: Any, ctx: PolicyContext, role: Any = None
) -> Iterator[str]:
    if not isinstance(subject, str):
        yield f"`{host}:sub` has a value that is not a string"
        return
    if host == names.GITHUB_OIDC_HOST:
        match = _GITHUB_SUBJECT.match(subject)
        if operator != "StringEquals":
            yield (
                f"`{host}:sub` is matched with {operator}; use StringEquals with an exact subject"
            )
        if not match:
            yield (
                f"GitHub subject {subject!r} is not one this project allows: use exactly "
                "repo:OWNER/REPO:environment:ENV (or ENV-readonly), repo:OWNER/REPO:pull_request "
                "or repo:OWNER/REPO:ref:refs/heads/main, never a wildcard such as repo:OWNER/*"
            )
            return
        repository = match.group("repository")
        if ctx.github_repository and repository.lower() != ctx.github_repository.lower():
            yield (
                f"GitHub subject {subject!r} names repository {repository!r}, but this stack "
                f"belongs to {ctx.github_repository!r}"
            )
        environment = match.group("environment")
        if not environment or not ctx.environment:
            return
        own, readonly = _trusted_environments(ctx.environment)
        if environment not in (own, readonly):
            allowed = f"{own!r}" + (f", or {readonly!r} for read-only roles" if readonly else "")
            yield (
                f"GitHub subject {subject!r} trusts environment {environment!r} from the "
                f"{ctx.environment} stack: each stack's roles trust only its own environment "
                f"({allowed})"
            )
        elif environment == readonly and role == names.deploy_role_name(ctx.environment):
            yield (
                f"GitHub subject {subject!r} lets jobs in {readonly!r}, which has no required "
                f"reviewers, assume the deploy role: it trusts only environment {own!r}"
            )
        return
    if host == names.MODAL_OIDC_HOST:
        match = _MODAL_SUBJECT.match(subject)
        container = match.group("container") if match else ""
        container_ok = container == "*" or not _WILDCARDS.search(container)
        if not match or not container_ok or operator not in ("StringEquals", "StringLike"):
            yield (
                f"Modal subject {subject!r} ({operator}) must pin workspace, environment, app and "
                "function, with `container_id:*` as the only wildcard (StringLike): build it with "
                "infra.names.modal_subject_pattern"
            )
            return
        if ctx.environment and match.group("environment") != ctx.environment:
            yield (
                f"Modal subject {subject!r} trusts Modal environment "
                f"{match.group('environment')!r} from the {ctx.environment} stack"
            )
        return
    if operator != "StringEquals" or _WILDCARDS.search(subject):
        yield (
            f"`{host}:sub` must be pinned with StringEquals to one exact subject, not "
            f"{operator} {subject!r}"
        )


def check_oidc_trust(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """Every web-identity trust pins `aud` (StringEquals) and `sub`, with no stray wildcard.

    A role that trusts GitHub's issuer without a pinned `sub` can be assumed from any repository on
    GitHub; roles like that have been found in the wild.
    """
    if resource.type != AWS_ROLE:
        return
    role = resource.props.get("name") or _display(resource)
    document, problem = _parse_document(
        f"trust policy of role '{role}'", resource.props.get("assumeRolePolicy")
    )
    if problem:
        yield problem
    if document is None:
        return
    for index, statement in enumerate(document.statements):
        if not _is_allow(statement):
            continue
        label = _statement_label(document, index, statement)
        principal = statement.get("Principal")
        if _principal_is_anyone(principal):
            yield f"{label} lets any AWS principal assume the role: name the exact principal"
            continue
        federated = principal.get("Federated") if isinstance(principal, Mapping) else None
        if not federated:
            continue
        actions = [a for a in _as_list(statement.get("Action")) if isinstance(a, str)]
        if "NotAction" in statement or any(a == "*" or a.endswith(":*") for a in actions):
            yield f"{label} allows every STS action: allow only sts:AssumeRoleWithWebIdentity"
        condition = statement.get("Condition")
        for arn in _as_list(federated):
            if not isinstance(arn, str):
                continue
            host = _oidc_host(arn)
            audiences = _condition_entries(condition, f"{host}:aud")
            pinned = [v for op, vs in audiences if op == "StringEquals" for v in vs]
            expected = _EXPECTED_AUDIENCE.get(host)
            if not pinned:
                yield (
                    f"{label} does not pin `{host}:aud` with StringEquals: add "
                    f"{{'StringEquals': {{'{host}:aud': '{expected or 'AUDIENCE'}'}}}}"
                )
            for operator, values in audiences:
                for value in values:
                    wrong = operator != "StringEquals" or not isinstance(value, str)
                    wrong = wrong or bool(_WILDCARDS.search(str(value)))
                    wrong = wrong or (expected is not None and value != expected)
                    if wrong:
                        yield (
                            f"{label} matches `{host}:aud` with {operator} {value!r}; pin it "
                            f"with StringEquals to {expected or 'one exact audience'!r}"
                        )
            subjects = _condition_entries(condition, f"{host}:sub")
            if not subjects:
                yield (
                    f"{label} has no `{host}:sub` condition, so any identity that issuer signs "
                    "can assume the role: pin the subject (infra/iam.py builds pinned trusts)"
                )
            for operator, values in subjects:
                if operator not in ("StringEquals", "StringLike"):
                    yield (
                        f"{label} matches `{host}:sub` with {operator}; use StringEquals "
                        "(StringLike only for Modal's container id)"
                    )
                    continue
                for value in values:
                    for message in _check_subject(host, operator, value, ctx, role):
                        yield f"{label}: {message}"


# ---------------------------------------------------------------------------------------------
# Policy: no wildcard grants
# ---------------------------------------------------------------------------------------------

# Read-only actions that AWS cannot scope to a resource and so may use `"Resource": "*"`.
# Empty on purpose: nothing this project runs needs one (the deploy role's GetCallerIdentity needs
# no permission at all). Add an entry only as `"service:Action": "why, and which role needs it"`,
# after checking that AWS really offers no resource type for it. Entries are honoured only for
# Get/List/Describe actions, so a write action added here by mistake still fails the check.
RESOURCE_WILDCARD_EXCEPTIONS: Mapping[str, str] = MappingProxyType({})
_READ_ONLY_VERBS = ("Get", "List", "Describe")
AWS_MANAGED_POLICY = re.compile(r"^arn:[a-z-]+:iam::aws:policy/")


def _excepted(action: str) -> bool:
    verb = action.split(":", 1)[-1]
    return action in RESOURCE_WILDCARD_EXCEPTIONS and verb.startswith(_READ_ONLY_VERBS)


def _managed_policy_arns(resource: Resource) -> list[Any]:
    if resource.type == AWS_ROLE:
        return _as_list(resource.props.get("managedPolicyArns"))
    if resource.type in (AWS_ROLE_POLICY_ATTACHMENT, AWS_USER_POLICY_ATTACHMENT):
        return _as_list(resource.props.get("policyArn"))
    return []


def check_no_wildcards(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """No Allow statement grants `*` / `service:*` actions, `*` resources or `*` principals."""
    for arn in _managed_policy_arns(resource):
        if isinstance(arn, str) and AWS_MANAGED_POLICY.match(arn):
            yield (
                f"{_display(resource)} attaches the AWS-managed policy {arn}, whose grants this "
                "pack cannot see and which are broad by design: write a scoped policy in "
                "infra/iam.py instead"
            )
    for document, problem in _permission_documents(resource):
        if problem:
            yield f"{_display(resource)}: {problem}"
        if document is None:
            continue
        for index, statement in enumerate(document.statements):
            if not _is_allow(statement):
                continue  # a Deny only takes access away, however broad it is
            label = _statement_label(document, index, statement)
            for key in ("NotAction", "NotResource", "NotPrincipal"):
                if key in statement:
                    yield (
                        f"{label} allows with {key}, which grants everything not listed: "
                        f"list what is allowed with {key.removeprefix('Not')} instead"
                    )
            actions = [a for a in _as_list(statement.get("Action")) if isinstance(a, str)]
            broad = sorted(a for a in actions if a == "*" or a.endswith(":*"))
            if broad:
                yield (
                    f"{label} allows {', '.join(broad)}: name the exact actions the caller makes"
                )
            resources = _as_list(statement.get("Resource"))
            if "*" in resources and not (actions and all(_excepted(a) for a in actions)):
                yield (
                    f"{label} allows {', '.join(sorted(actions)) or 'its actions'} on every "
                    "resource ('*'): scope Resource to this stack's ARNs (infra/names.py), or, for a "
                    "read-only action AWS cannot scope, add it to RESOURCE_WILDCARD_EXCEPTIONS "
                    "with the reason"
                )
            if _principal_is_anyone(statement.get("Principal")):
                yield f"{label} allows anyone ('*' principal): name the principals, or make it a Deny"


# ---------------------------------------------------------------------------------------------
# Policy: the runtime principal can never escalate
# ---------------------------------------------------------------------------------------------

# The suffix names.py gives the runtime role and user, whatever the environment.
_RUNTIME_SUFFIX = names.runtime_role_name("x").removeprefix(names.prefix("x"))
_BOUNDARY_SUFFIX = names.runtime_boundary_name("x").removeprefix(names.prefix("x"))
_FORBIDDEN_RUNTIME_SERVICES = ("iam", "sts")


def _last_segment(value: Any) -> str:
    text = _text(value) or ""
    return text.rsplit("/", 1)[-1]  # a role or user given by ARN ends with its name


def _is_runtime_principal(value: Any) -> bool:
    return _last_segment(value).endswith(_RUNTIME_SUFFIX)


def _runtime_scope(resource: Resource) -> str | None:
    """A description if this resource shapes what the runtime principal may do, else None."""
    props = resource.props
    if resource.type == AWS_ROLE_POLICY and _is_runtime_principal(props.get("role")):
        return f"runtime role '{_last_segment(props.get('role'))}'"
    if resource.type == AWS_USER_POLICY and _is_runtime_principal(props.get("user")):
        return f"runtime user '{_last_segment(props.get('user'))}'"
    if resource.type == AWS_POLICY and (_text(props.get("name")) or "").endswith(_BOUNDARY_SUFFIX):
        return f"runtime permissions boundary '{props.get('name')}'"
    if resource.type in (AWS_ROLE, AWS_USER) and _is_runtime_principal(props.get("name")):
        kind = "role" if resource.type == AWS_ROLE else "user"
        return f"runtime {kind} '{props.get('name')}'"
    if resource.type == AWS_ROLE_POLICY_ATTACHMENT and _is_runtime_principal(props.get("role")):
        return f"runtime role '{_last_segment(props.get('role'))}'"
    if resource.type == AWS_USER_POLICY_ATTACHMENT and _is_runtime_principal(props.get("user")):
        return f"runtime user '{_last_segment(props.get('user'))}'"
    return None


def _touches_forbidden_service(action: str) -> bool:
    service = action.split(":", 1)[0].lower() if ":" in action else action.lower()
    return any(fnmatch.fnmatchcase(s, service) for s in _FORBIDDEN_RUNTIME_SERVICES)


def check_runtime_cannot_escalate(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """The GPU app's principal gets S3 object access and nothing that reaches IAM or STS.

    A job runs user-supplied payloads; if its credentials could pass a role, assume one or edit
    IAM, one bad payload would own the account.
    """
    scope = _runtime_scope(resource)
    if scope is None:
        return
    props = resource.props
    if resource.type in (AWS_ROLE, AWS_USER):
        boundary = props.get("permissionsBoundary")
        if _known(boundary) and not boundary:
            yield (
                f"{scope} has no permissions boundary: set permissions_boundary to the runtime "
                "boundary policy so no later policy edit can lift it"
            )
    if resource.type == AWS_ROLE and _as_list(props.get("managedPolicyArns")):
        yield f"{scope} has managed policies attached: it gets exactly its inline policy, no more"
    if resource.type in (AWS_ROLE_POLICY_ATTACHMENT, AWS_USER_POLICY_ATTACHMENT):
        yield (
            f"{_display(resource)} attaches {props.get('policyArn')} to the {scope}: it gets "
            "exactly its inline policy, no more"
        )
    for document, _problem in _permission_documents(resource):
        if document is None:
            continue  # an unparsable document is reported by iam-no-wildcards
        for index, statement in enumerate(document.statements):
            if not _is_allow(statement):
                continue
            label = _statement_label(document, index, statement)
            if "NotAction" in statement:
                yield f"{label} of the {scope} uses NotAction, which includes IAM and STS"
            actions = [a for a in _as_list(statement.get("Action")) if isinstance(a, str)]
            forbidden = sorted(a for a in actions if _touches_forbidden_service(a))
            if forbidden:
                yield (
                    f"{label} lets the {scope} call {', '.join(forbidden)}: the GPU app must never "
                    "touch IAM or STS (no iam:PassRole, no sts:AssumeRole); grant only the S3 "
                    "calls it makes (infra/iam.py runtime_policy)"
                )


# ---------------------------------------------------------------------------------------------
# Policy: environment isolation
# ---------------------------------------------------------------------------------------------


def _isolation_fields(resource: Resource) -> list[tuple[str, Any]]:
    """(what, value) pairs that must carry the stack's environment."""
    props = resource.props
    if resource.type in (AWS_ROLE, AWS_USER, AWS_POLICY):
        kind = {AWS_ROLE: "IAM role", AWS_USER: "IAM user", AWS_POLICY: "IAM policy"}[resource.type]
        return [(f"{kind} name", props.get("name")), (f"{kind} path", props.get("path") or "/")]
    if resource.type in GITHUB_ENVIRONMENT_SCOPED:
        return [("GitHub environment", props.get("environment"))]
    if modal_kind(resource):
        return [("Modal environment", props.get("environment_name"))]
    return []


def check_environment_isolation(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """Per-environment names carry this stack's environment, and no other.

    dev and prod share an AWS account, a GitHub repository and a Modal workspace; names are what
    keeps a dev deploy from touching a prod role, environment or secret.
    """
    environment = ctx.environment
    if not environment:
        return
    others = [e for e in ENVIRONMENTS if e != environment]
    for what, value in _isolation_fields(resource):
        if not _known(value):
            continue
        text = _text(value)
        if text is None:
            yield (
                f"{_display(resource)} has no explicit {what}: set one that carries "
                f"'{environment}' (infra/names.py)"
            )
            continue
        tokens = _tokens(text)
        foreign = [e for e in others if e in tokens]
        if environment not in tokens or foreign:
            yield (
                f"{_display(resource)}: {what} {text!r} does not belong to the {environment} "
                f"stack; every per-environment name must carry '{environment}' and no other "
                "environment (build it with infra/names.py)"
            )


# ---------------------------------------------------------------------------------------------
# Policy: the prod Modal environment is restricted
# ---------------------------------------------------------------------------------------------


def check_modal_prod_restricted(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """In a restricted Modal environment only granted users reach its secrets and apps."""
    if modal_kind(resource) != MODAL_ENVIRONMENT:
        return
    name = resource.props.get("environment_name")
    is_prod = ctx.environment == PROD or (isinstance(name, str) and PROD in _tokens(name))
    restricted = resource.props.get("restricted")
    if is_prod and _known(restricted) and restricted is not True:
        yield (
            f"Modal environment '{name}' is not restricted, so every workspace member can read "
            "its secrets and redeploy its app: set restricted=True and grant roles explicitly "
            "(rentagpu:modalServiceUserRoles)"
        )


# ---------------------------------------------------------------------------------------------
# Policy: access keys rotate (advisory)
# ---------------------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_access_key_age(
    resources: Sequence[Resource], ctx: PolicyContext
) -> Iterator[tuple[Resource | None, str]]:
    """Stack level, because `createDate` is an output: keys older than the rotation age."""
    now = ctx.current_time()
    for resource in resources:
        if resource.type != AWS_ACCESS_KEY:
            continue
        created = _parse_time(resource.props.get("createDate"))
        if created is None:
            continue  # not created yet: a new key is as young as it gets
        age = (now - created).days
        if age > ctx.access_key_max_age_days:
            yield (
                resource,
                f"access key {_display(resource)} of user '{resource.props.get('user')}' was "
                f"created {created:%Y-%m-%d}, {age} days ago, past rentagpu:accessKeyMaxAgeDays "
                f"({ctx.access_key_max_age_days}): bump rentagpu:accessKeySerial by one and run "
                "`pulumi up`; the new key is live before the old one is deleted",
            )


# ---------------------------------------------------------------------------------------------
# The policy list
# ---------------------------------------------------------------------------------------------

ResourceCheck = Callable[[Resource, PolicyContext], Iterable[str]]
StackCheck = Callable[[Sequence[Resource], PolicyContext], Iterable[tuple[Resource | None, str]]]


@dataclass(frozen=True)
class ResourcePolicy:
    name: str
    description: str
    level: Level
    check: ResourceCheck
    # Needs to know which inputs are marked secret: the pack runs it in the engine's remediation
    # pass, where secret marks are visible (see infra/policy_pack/pack.py).
    needs_secret_marks: bool = False
    applies_to: Callable[[Resource], bool] | None = None


@dataclass(frozen=True)
class StackPolicy:
    name: str
    description: str
    level: Level
    check: StackCheck


RESOURCE_POLICIES: tuple[ResourcePolicy, ...] = (
    ResourcePolicy(
        "secret-inputs-are-secret",
        "GitHub Actions secrets and Modal secrets are fed only from values marked secret.",
        "mandatory",
        check_secret_inputs,
        needs_secret_marks=True,
        applies_to=_applies_secret_inputs,
    ),
    ResourcePolicy(
        "prod-environment-protected",
        "The prod GitHub environment has required reviewers, prevent_self_review, no admin "
        "bypass and custom deployment branch policies; prod-readonly has the last two.",
        "mandatory",
        check_prod_environment,
    ),
    ResourcePolicy(
        "oidc-trust-pinned",
        "Every web-identity trust pins aud (StringEquals) and sub; the only wildcard is Modal's "
        "container id; GitHub environments are the stack's own or its -readonly one (never for "
        "the deploy role).",
        "mandatory",
        check_oidc_trust,
    ),
    ResourcePolicy(
        "iam-no-wildcards",
        "No IAM or bucket policy statement allows '*' or 'service:*' actions, '*' resources "
        "(beyond listed read-only exceptions) or '*' principals.",
        "mandatory",
        check_no_wildcards,
    ),
    ResourcePolicy(
        "runtime-cannot-escalate",
        "The GPU app's role/user is bounded, has only its inline policy, and can never call IAM "
        "or STS.",
        "mandatory",
        check_runtime_cannot_escalate,
    ),
    ResourcePolicy(
        "environment-isolation",
        "Every IAM role/user/policy name and path, GitHub environment and Modal environment "
        "carries this stack's environment and no other.",
        "mandatory",
        check_environment_isolation,
    ),
    ResourcePolicy(
        "modal-prod-environment-restricted",
        "The prod Modal environment is restricted.",
        "mandatory",
        check_modal_prod_restricted,
    ),
)

STACK_POLICIES: tuple[StackPolicy, ...] = (
    StackPolicy(
        "prod-deploys-from-main-only",
        "The prod and prod-readonly GitHub environments exist and each admits exactly one "
        "deployment branch: main.",
        "mandatory",
        check_prod_deploys_from_main_only,
    ),
    StackPolicy(
        "access-key-rotation",
        "IAM access keys are younger than rentagpu:accessKeyMaxAgeDays.",
        "advisory",
        check_access_key_age,
    ),
)

CROSS_STACK_POLICY = "stacks-share-nothing"


def run_policies(resources: Sequence[Resource], ctx: PolicyContext) -> list[Violation]:
    """Every resource and stack policy over one stack's resources."""
    violations: list[Violation] = []
    for policy in RESOURCE_POLICIES:
        for resource in resources:
            for message in policy.check(resource, ctx):
                violations.append(Violation(policy.name, resource.name, message, policy.level))
    for stack_policy in STACK_POLICIES:
        for found, message in stack_policy.check(resources, ctx):
            where = found.name if found is not None else "(stack)"
            violations.append(Violation(stack_policy.name, where, message, stack_policy.level))
    return violations


# ---------------------------------------------------------------------------------------------
# Offline adapter: renderings from infra.render
# ---------------------------------------------------------------------------------------------


def resource_from_rendered(rendered: Any) -> Resource:
    """A `Resource` from an `infra.render.RenderedResource` (its unmasked inputs, its marks)."""
    props = {k: v for k, v in dict(rendered.raw_inputs).items() if not k.startswith("__")}
    return Resource(
        type=rendered.type,
        name=rendered.name,
        props=props,
        secret_paths=frozenset(rendered.secret_paths),
    )


def evaluate(rendering: Any, context: PolicyContext | None = None) -> list[Violation]:
    """The verdicts for one rendered stack (`infra.render.Rendering`).

    Without a context, the stack name is taken as its environment (the config parser insists they
    are equal) and the rest keeps its defaults.
    """
    ctx = context or PolicyContext(environment=rendering.stack)
    return run_policies([resource_from_rendered(r) for r in rendering.resources], ctx)


# ---------------------------------------------------------------------------------------------
# Cross-stack: nothing is declared by two stacks
# ---------------------------------------------------------------------------------------------


def _identity(resource: Resource) -> tuple[str, ...] | None:
    """What a resource is called where it lives: two declarations with one identity collide."""
    p = resource.props

    def key(*parts: Any) -> tuple[str, ...] | None:
        if any(part is None or not _known(part) for part in parts):
            return None
        return tuple(str(part) for part in parts)

    kind = modal_kind(resource)
    if kind == MODAL_ENVIRONMENT:
        return key("Modal environment", p.get("environment_name"))
    if kind == MODAL_SECRET:
        return key("Modal secret", p.get("environment_name"), p.get("secret_name"))
    if kind == MODAL_APP_DEPLOYMENT:
        return key("Modal app", p.get("environment_name"), p.get("app_name"))
    by_type: dict[str, tuple[str, tuple[str, ...]]] = {
        AWS_ROLE: ("IAM role", ("name",)),
        AWS_USER: ("IAM user", ("name",)),
        AWS_POLICY: ("IAM policy", ("name",)),
        AWS_OIDC_PROVIDER: ("IAM OIDC provider", ("url",)),
        AWS_BUCKET: ("S3 bucket", ("bucket",)),
        GITHUB_ENVIRONMENT: ("GitHub environment", ("repository", "environment")),
        GITHUB_DEPLOYMENT_POLICY: (
            "GitHub deployment policy",
            ("repository", "environment", "branchPattern"),
        ),
        GITHUB_ENVIRONMENT_SECRET: (
            "GitHub environment secret",
            ("repository", "environment", "secretName"),
        ),
        GITHUB_ENVIRONMENT_VARIABLE: (
            "GitHub environment variable",
            ("repository", "environment", "variableName"),
        ),
        GITHUB_REPOSITORY_SECRET: ("GitHub repository secret", ("repository", "secretName")),
        GITHUB_REPOSITORY_VARIABLE: ("GitHub repository variable", ("repository", "variableName")),
        GITHUB_RULESET: ("GitHub ruleset", ("repository", "name")),
    }
    if resource.type not in by_type:
        return None
    label, fields = by_type[resource.type]
    return key(label, *(p.get(f) for f in fields))


def check_stacks_share_nothing(stacks: Mapping[str, Sequence[Resource]]) -> list[Violation]:
    """Anything two stacks both declare: each would overwrite or delete the other's.

    Per-environment objects must carry their environment in their names; repository- and
    account-wide ones (MODAL_APP_NAME, the main ruleset, the OIDC providers) belong to one stack
    (rentagpu:ownsRepositorySettings / rentagpu:ownsAccountSingletons).
    """
    declared: dict[tuple[str, ...], list[tuple[str, Resource]]] = defaultdict(list)
    for stack, resources in stacks.items():
        for resource in resources:
            identity = _identity(resource)
            if identity is not None:
                declared[identity].append((stack, resource))
    violations = []
    for identity, owners in sorted(declared.items()):
        stack_names = sorted({stack for stack, _ in owners})
        if len(stack_names) < 2:
            continue
        label, parts = identity[0], identity[1:]
        where = " / ".join(f"{stack}:{resource.name}" for stack, resource in owners)
        violations.append(
            Violation(
                CROSS_STACK_POLICY,
                where,
                f"{label} {'/'.join(parts)!r} is declared by the {' and '.join(stack_names)} "
                "stacks, so each would overwrite or delete the other's: give each stack its own "
                "(names from infra/names.py carry the environment) or let exactly one stack own "
                "it (rentagpu:ownsRepositorySettings / rentagpu:ownsAccountSingletons)",
            )
        )
    return violations


def evaluate_stacks(renderings: Sequence[Any]) -> list[Violation]:
    """`check_stacks_share_nothing` over renderings of several stacks (dev and prod)."""
    return check_stacks_share_nothing(
        {r.stack: [resource_from_rendered(x) for x in r.resources] for r in renderings}
    )
