"""The laptop checks that ask Modal (read-only RPCs only): whose token the profile holds, how old it
is, and whether it could change prod.

- `TokenInfoGet` (modal 1.6.4 pyi 17666): `user_identity` or `service_user_identity` (a oneof),
  and `created_at` / `expires_at` as Timestamps (`modal token info` prints them when set).
- `EnvironmentList` (pyi EnvironmentListItem): prod's id and `is_managed` (restricted).
- `EnvironmentGetRoles(environment_id)` (pyi 6921 Principal): the member's `role_str` there and
  `member_role` (manager or owner can change any environment).
"""

from __future__ import annotations

import datetime

from infra.core.errors import ModalCallError
from infra.modal_hook.client import CallPolicy, ModalApi, run_modal
from infra.tools.doctor.checks import Check
from infra.tools.doctor.profile import ModalProfile

PROD = "prod"
POLICY = CallPolicy(connect_timeout_s=10.0, deadline_s=30.0)


async def _prod_access(api: ModalApi, user_id: str) -> Check:
    from google.protobuf import empty_pb2
    from modal_proto import api_pb2

    listed = await api.call("EnvironmentList", empty_pb2.Empty())
    prod = next((item for item in listed.items if item.name == PROD), None)
    if prod is None:
        return Check("cannot write prod", True, "this workspace has no prod environment")
    if not prod.is_managed:
        return Check(
            "cannot write prod",
            False,
            "prod is not restricted: every member of the workspace, you included, can change it",
            "pulumi up --stack prod  # by an admin: the Modal stage restricts prod",
        )
    roles = await api.call(
        "EnvironmentGetRoles",
        api_pb2.EnvironmentGetRolesRequest(environment_id=prod.environment_id),
    )
    mine = next((p for p in roles.principal_roles if p.user_id and p.user_id == user_id), None)
    if mine is None:
        return Check("cannot write prod", True, "you hold no role in prod")
    if mine.member_role in (api_pb2.MEMBER_ROLE_MANAGER, api_pb2.MEMBER_ROLE_OWNER):
        return Check(
            "cannot write prod",
            False,
            "your account is a workspace manager or owner: its tokens can change prod whatever "
            "prod's roles say",
            "use a member account without manager rights for daily work (`modal token new` as "
            "that member); keep the manager's token off this laptop",
        )
    if mine.role_str == "contributor":
        return Check(
            "cannot write prod",
            False,
            "you are a contributor in prod: this laptop's token can deploy there",
            f"modal environment roles update prod {mine.user_name or user_id} --role viewer  "
            "# by a workspace manager",
        )
    return Check("cannot write prod", True, f"your role in prod is {mine.role_str or 'none'}")


def modal_checks(profile: ModalProfile, rotation_days: int, *, person: bool) -> list[Check]:
    """`person`: this is a person's machine, so the token must be a person's (in automation a
    service user's is expected)."""
    if profile.token_id is None or profile.token_secret is None:
        return [
            Check(
                "Modal token",
                False,
                f"profile '{profile.name}' holds no token",
                f"modal token new --profile {profile.name}",
            )
        ]

    async def operation(api: ModalApi) -> list[Check]:
        from modal_proto import api_pb2

        info = await api.call("TokenInfoGet", api_pb2.TokenInfoGetRequest())
        checks = [_identity(profile, info, person)]
        checks.append(_age(profile, info, rotation_days))
        if info.HasField("user_identity"):
            try:
                checks.append(await _prod_access(api, info.user_identity.user_id))
            except ModalCallError as error:
                checks.append(
                    Check(
                        "cannot write prod",
                        False,
                        f"could not tell: {error}",
                        "modal environment roles list prod  # ask a workspace manager",
                    )
                )
        return checks

    try:
        return run_modal(
            "check this laptop's Modal token",
            operation,
            policy=POLICY,
            environ=profile.environ(),
        )
    except ModalCallError as error:
        return [
            Check("Modal token", False, str(error), f"modal token new --profile {profile.name}")
        ]


def _ci_kind(service_user: str) -> str:
    """The incident kind of a CI service user's token (`names.ci_service_user` puts the purpose
    in its name; a hand-made one is the fallback deploy token or a configured service user)."""
    return "modal-read-token" if "-ci-read-" in service_user else "modal-deploy-token"


def _identity(profile: ModalProfile, info, person: bool) -> Check:
    token = profile.masked_token
    if info.HasField("service_user_identity"):
        name = info.service_user_identity.service_user_name
        if not person:
            return Check(
                "token owner", True, f"service user '{name}' (token {token}), in automation"
            )
        return Check(
            "token owner",
            False,
            f"profile '{profile.name}' holds service user '{name}''s token {token}: a CI "
            "credential on a laptop. Personal tokens are for local and dev use; CI's belong in "
            "GitHub environment secrets only",
            f"modal token new --profile {profile.name}  # your own; then `python -m infra incident"
            f" --stack STACK --credential {_ci_kind(name)}` if that token should not have been "
            "here",
        )
    return Check(
        "token owner",
        True,
        f"member '{info.user_identity.username}' of workspace '{info.workspace_name}' "
        f"(token {token})",
    )


def _age(profile: ModalProfile, info, rotation_days: int) -> Check:
    if not info.HasField("created_at") or info.created_at.seconds <= 0:
        return Check("token age", True, "Modal does not say when the token was made")
    created = info.created_at.ToDatetime(tzinfo=datetime.UTC)
    age = (datetime.datetime.now(datetime.UTC) - created).days
    if age > rotation_days:
        return Check(
            "token age",
            False,
            f"token {profile.masked_token} is {age} days old; the rotation period is "
            f"{rotation_days} days (tokenRotationDays in Pulumi.dev.yaml)",
            f"modal token new --profile {profile.name} && modal workspace member-tokens delete "
            f"{profile.masked_token}  # the old token's full id: modal workspace member-tokens list",
        )
    return Check("token age", True, f"{age} days old (rotation period {rotation_days} days)")
