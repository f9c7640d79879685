"""Rotating a Modal token (the CI token or the read-only one) of a stack; see the package docstring."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from infra import names
from infra.config import PROJECT, RawValue, SecretStr
from infra.errors import RotationError, StackUpError
from infra.rotation.common import (
    Steps,
    config_holders,
    config_value,
    mask,
    read_credential,
    role_key,
    service_user_roles,
)
from infra.rotation.driver import (
    NEW_TOKEN_ID_VARIABLE,
    NEW_TOKEN_SECRET_VARIABLE,
    ROTATION_NAMESPACE,
    StackDriver,
)

# ---------------------------------------------------------------------------------------------
# Modal tokens
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSlot:
    """Where one Modal token of a stack lives: config keys, GitHub secrets, default role."""

    credential: str
    id_key: str
    secret_key: str
    default_role: str
    read_only: bool  # the read-only token: where it lives depends on the stack (see names.py)

    @property
    def previous_id_key(self) -> str:
        return _previous(self.id_key)

    @property
    def previous_secret_key(self) -> str:
        return _previous(self.secret_key)

    def github_environment(self, environment: str) -> str | None:
        """The GitHub environment holding this token's secrets, or None for repository secrets."""
        return names.readonly_environment(environment) if self.read_only else environment

    def github_secrets(self, environment: str) -> tuple[str, str]:
        if not self.read_only:
            return names.GITHUB_TOKEN_SECRETS  # type: ignore[return-value]
        if self.github_environment(environment) is not None:
            return ("MODAL_READ_TOKEN_ID", "MODAL_READ_TOKEN_SECRET")
        from infra.github import repository_name

        return (
            repository_name(environment, "MODAL_READ_TOKEN_ID"),
            repository_name(environment, "MODAL_READ_TOKEN_SECRET"),
        )

    def describe_github(self, environment: str) -> str:
        """Where GitHub keeps the token, in words: 'environment secrets A and B of ...'."""
        first, second = self.github_secrets(environment)
        where = self.github_environment(environment)
        if where is None:
            return f"repository secrets {first} and {second}"
        return f"environment secrets {first} and {second} of environment '{where}'"

    def state_resource_names(self, environment: str) -> tuple[str, ...]:
        from infra.github import slug

        prefix = self.github_environment(environment) or environment
        return tuple(f"{prefix}-{slug(n)}" for n in self.github_secrets(environment))


def _previous(key: str) -> str:
    """`rentagpu:modalTokenId` -> `rentagpu-rotation:previousModalTokenId`."""
    short = key.split(":", 1)[1]
    return f"{ROTATION_NAMESPACE}:previous{short[0].upper()}{short[1:]}"


MODAL_TOKEN = TokenSlot(
    "modal-token",
    f"{PROJECT}:modalTokenId",
    f"{PROJECT}:modalTokenSecret",
    "contributor",
    read_only=False,
)
MODAL_READ_TOKEN = TokenSlot(
    "modal-read-token",
    f"{PROJECT}:modalReadTokenId",
    f"{PROJECT}:modalReadTokenSecret",
    "viewer",
    read_only=True,
)
TOKEN_SLOTS = {slot.credential: slot for slot in (MODAL_TOKEN, MODAL_READ_TOKEN)}


@dataclass(frozen=True)
class ModalToken:
    id: SecretStr = field(repr=False)
    secret: SecretStr = field(repr=False)

    def values(self) -> tuple[str, str]:
        return self.id.reveal(), self.secret.reveal()

    @property
    def masked(self) -> str:
        return mask(self.id.reveal())


@dataclass(frozen=True)
class TokenIdentity:
    """Who a token belongs to, as Modal's TokenInfoGet reports it (names and ids are not secret)."""

    kind: str  # "service_user" or "user"
    principal: str
    workspace_id: str
    workspace_name: str

    def describe(self) -> str:
        who = "service user" if self.kind == "service_user" else "member"
        return f"{who} '{self.principal}' of workspace '{self.workspace_name}'"


def _modal_environ(token: ModalToken | None) -> dict[str, str]:
    from infra.modal_hook.client import TOKEN_ID_VARIABLE, TOKEN_SECRET_VARIABLE

    environ = dict(os.environ)
    if token is not None:
        environ[TOKEN_ID_VARIABLE], environ[TOKEN_SECRET_VARIABLE] = token.values()
    return environ


def identify_token(token: ModalToken, what: str) -> TokenIdentity | None:
    """Ask Modal who `token` is (TokenInfoGet); None when Modal rejects it."""
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    async def operation(api: ModalApi) -> TokenIdentity:
        from modal_proto import api_pb2

        reply = await api.call("TokenInfoGet", api_pb2.TokenInfoGetRequest())
        if reply.HasField("service_user_identity"):
            kind, principal = "service_user", reply.service_user_identity.service_user_name
        else:
            kind, principal = "user", reply.user_identity.username
        return TokenIdentity(kind, principal, reply.workspace_id, reply.workspace_name)

    try:
        return run_modal(
            f"check the {what} with Modal",
            operation,
            environ=_modal_environ(token),
            secrets=token.values(),
        )
    except ModalCallError as error:
        if error.failure is Failure.AUTH:
            return None
        raise


def reaches_environment(token: ModalToken, environment: str) -> bool:
    """Whether `token` can look up the runtime secret in the stack's Modal environment.

    That is what CI's `pulumi up` and deploy do first, so it proves the role, not just the token.
    """
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    async def operation(api: ModalApi) -> bool:
        from modal_proto import api_pb2

        request = api_pb2.SecretGetOrCreateRequest(
            deployment_name=names.RUNTIME_SECRET_NAME, environment_name=environment
        )
        await api.call("SecretGetOrCreate", request)
        return True

    try:
        return run_modal(
            f"reach Modal environment '{environment}'",
            operation,
            environ=_modal_environ(token),
            secrets=token.values(),
        )
    except ModalCallError as error:
        if error.failure in (Failure.AUTH, Failure.PERMISSION_DENIED, Failure.NOT_FOUND):
            return False
        raise


def create_service_user(name: str) -> ModalToken:
    """A new service user and its token, made with the operator's token (MODAL_TOKEN_*)."""
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    async def operation(api: ModalApi) -> ModalToken:
        from modal_proto import api_pb2

        reply = await api.call("ServiceUserCreate", api_pb2.ServiceUserCreateRequest(name=name))
        return ModalToken(SecretStr(reply.token_id), SecretStr(reply.token_secret))

    try:
        return run_modal(f"create Modal service user '{name}'", operation)
    except ModalCallError as error:
        if error.failure is Failure.ALREADY_EXISTS:
            suggestion = f"rentagpu-ci-{datetime.date.today():%Y-%m-%d}"
            raise RotationError(
                f"Modal service user '{name}' already exists and its token cannot be shown "
                f"again; pick a new name (e.g. --create-service-user {suggestion})"
            ) from None
        raise


def revoke_modal_token(
    old: ModalToken, old_identity: TokenIdentity | None, new_identity: TokenIdentity | None
) -> str:
    """Revoke `old` with the operator's token; return what was done, in words."""
    from infra.modal_hook.client import Failure, ModalApi, ModalCallError, run_modal

    own_user = (
        old_identity is not None
        and old_identity.kind == "service_user"
        and (new_identity is None or new_identity.principal != old_identity.principal)
    )

    async def operation(api: ModalApi) -> str:
        from modal_proto import api_pb2

        try:
            if own_user:
                assert old_identity is not None
                request = api_pb2.ServiceUserDeleteRequest(service_user_name=old_identity.principal)
                await api.call("ServiceUserDelete", request)
                return f"deleted service user '{old_identity.principal}' (its only token with it)"
            await api.call("TokenDelete", api_pb2.TokenDeleteRequest(token_id=old.id.reveal()))
            return f"deleted token {old.masked}"
        except ModalCallError as error:
            if error.failure is Failure.NOT_FOUND:
                return "nothing to delete: Modal no longer has it"
            raise

    return run_modal("revoke the old Modal token", operation, secrets=old.values())


def find_modal_token(token_id: str) -> str | None:
    """Which member or service user still holds `token_id` (TokensList, ServiceUserList)."""
    from infra.modal_hook.client import ModalApi, run_modal

    async def operation(api: ModalApi) -> str | None:
        from google.protobuf import empty_pb2

        members = await api.call("TokensList", empty_pb2.Empty())
        for token in members.tokens:
            if token.token_id == token_id:
                state = "disabled" if token.disabled else "active"
                return f"{state} member token of '{token.member_displayname}'"
        users = await api.call("ServiceUserList", empty_pb2.Empty())
        for user in users.service_users:
            if user.token_id == token_id:
                return f"token of service user '{user.name}'"
        return None

    return run_modal("list Modal tokens and service users", operation, secrets=[token_id])


def _token_from_config(
    raw: Mapping[str, RawValue], id_key: str, secret_key: str
) -> ModalToken | None:
    token_id, secret = raw.get(id_key), raw.get(secret_key)
    if token_id is None or secret is None or not token_id.value or not secret.value:
        return None
    return ModalToken(SecretStr(token_id.value), SecretStr(secret.value))


@dataclass(frozen=True)
class NewTokenSource:
    create_service_user: str | None = None
    read_from: str | None = None  # "stdin" or "env"


def rotate_modal_token(
    driver: StackDriver,
    slot: TokenSlot,
    source: NewTokenSource | None,
    *,
    revoke_old: bool,
    peers: Mapping[str, StackDriver],
    out: TextIO,
    stdin: TextIO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Rotate one Modal token of a stack (see the module docstring); `source=None` resumes."""
    environ = os.environ if environ is None else environ
    stack = driver.stack
    steps = Steps(out, 7)
    raw = driver.get_config()
    environment = config_value(raw, "environment", stack) or stack
    previous = _token_from_config(raw, slot.previous_id_key, slot.previous_secret_key)
    current = _token_from_config(raw, slot.id_key, slot.secret_key)
    resume_hint = f"python -m infra rotate {slot.credential} --stack {stack} --resume"

    if source is None:
        if previous is None:
            raise RotationError(
                f"nothing to resume: stack '{stack}' has no rotation of {slot.credential} in "
                f"progress ({slot.previous_id_key} is not set)"
            )
        if current is None:
            raise RotationError(f"stack '{stack}' config lacks {slot.id_key}/{slot.secret_key}")
        old, new = previous, current
        steps.step(f"Resume the rotation of {slot.credential} in stack '{stack}'")
        old_identity = identify_token(old, "old token")
        steps.say(f"old token {old.masked}: " + _who(old_identity))
        steps.step("New token: already in the stack config")
        new_identity = identify_token(new, "new token")
        steps.step("Check the new token")
        if new_identity is None:
            raise RotationError(
                f"Modal rejects the new token {new.masked} now in stack '{stack}' config; the old "
                f"token {old.masked} was not revoked. Rotate again with a fresh token."
            )
        steps.say(f"accepted: {new_identity.describe()}")
        steps.step("Config already switched; old token kept under " + slot.previous_id_key)
    else:
        if previous is not None:
            raise RotationError(
                f"a rotation of {slot.credential} in stack '{stack}' is already in progress (its "
                f"old token is kept in {slot.previous_id_key}); finish it first: {resume_hint} "
                "--revoke-old"
            )
        steps.step(f"Read the current {slot.credential} of stack '{stack}'")
        if current is None:
            raise RotationError(
                f"stack '{stack}' has no {slot.id_key}/{slot.secret_key} to rotate; set one with "
                f"`pulumi config set --secret --stack {stack} {slot.id_key}` (value on stdin)"
            )
        old = current
        old_identity = identify_token(old, "current token")
        steps.say(f"current token {old.masked}: " + _who(old_identity))

        steps.step("Obtain the new token")
        new = _obtain_token(source, stdin, environ, steps)

        steps.step("Check the new token")
        new_identity = identify_token(new, "new token")
        problems = _new_token_problems(old, old_identity, new, new_identity)
        if problems:
            raise RotationError(
                "the new token was not used, nothing changed: " + "; ".join(problems)
            )
        assert new_identity is not None
        steps.say(f"accepted: {new_identity.describe()}")

        steps.step("Keep the old token in the encrypted config, switch the stack to the new one")
        driver.set_config(slot.previous_id_key, old.id.reveal(), secret=True)
        driver.set_config(slot.previous_secret_key, old.secret.reveal(), secret=True)
        for change in _update_roles(driver, raw, slot, old_identity, new_identity):
            steps.say(change)
        driver.set_config(slot.id_key, new.id.reveal(), secret=True)
        driver.set_config(slot.secret_key, new.secret.reveal(), secret=True)
        steps.say(f"{slot.id_key}/{slot.secret_key} now hold {new.masked}")

    steps.step(f"pulumi up: replace the GitHub {slot.describe_github(environment)}")
    try:
        driver.up()
    except StackUpError as error:
        still = identify_token(old, "old token")
        state = "still works" if still is not None else "is REJECTED by Modal (was it revoked?)"
        raise RotationError(
            f"{error}\nNothing was revoked: the old token {old.masked} {state}, so CI keeps "
            "working with whichever token GitHub holds. The stack config already holds the new "
            f"token; fix the cause, then run: {resume_hint}"
        ) from None

    steps.step("Check both tokens: new in use, old still valid until revoked")
    if not reaches_environment(new, environment):
        raise RotationError(
            f"the new token {new.masked} cannot reach Modal environment '{environment}' (role "
            f"missing?); the old token {old.masked} was not revoked. Check modalServiceUserRoles "
            f"and run: {resume_hint}"
        )
    old_works = identify_token(old, "old token") is not None
    steps.say(f"new token {new.masked} reaches environment '{environment}'")
    steps.say(f"old token {old.masked} " + ("still works" if old_works else "is already rejected"))

    steps.step("Revoke the old token")
    if not revoke_old:
        steps.say(_revoke_instructions(old, old_identity, slot, stack, resume_hint))
        return
    notes: list[str] = []
    holders = config_holders(old.id.reveal(), {stack: driver, **peers}, notes)
    holders = [h for h in holders if slot.previous_id_key not in h]
    for note in notes:
        steps.say(f"note: {note}")
    if holders:
        raise RotationError(
            f"not revoking {old.masked}: it is still configured in " + "; ".join(holders) + ". "
            f"Rotate those first (python -m infra rotate {slot.credential} --stack OTHER ...), "
            f"then run: {resume_hint} --revoke-old"
        )
    steps.say(revoke_modal_token(old, old_identity, new_identity))
    if identify_token(old, "old token") is not None:
        raise RotationError(
            f"Modal still accepts the old token {old.masked} after revoking it; revoke it in the "
            "Modal dashboard (Settings > Tokens / Service users) and run again"
        )
    steps.say(f"Modal now rejects the old token {old.masked}")
    driver.remove_config(slot.previous_id_key)
    driver.remove_config(slot.previous_secret_key)
    steps.say(f"removed the kept copy ({slot.previous_id_key}) from the stack config")
    steps.say(
        "done. Check: python -m infra incident --stack "
        f"{stack} --credential {slot.credential} --verify (old id on stdin)"
    )


def _who(identity: TokenIdentity | None) -> str:
    return identity.describe() if identity else "Modal REJECTS it (treat this as an incident)"


def _obtain_token(
    source: NewTokenSource, stdin: TextIO, environ: Mapping[str, str], steps: Steps
) -> ModalToken:
    if source.create_service_user:
        token = create_service_user(source.create_service_user)
        steps.say(f"created service user '{source.create_service_user}': token {token.masked}")
        return token
    token_id, secret = read_credential(
        source.read_from or "stdin",
        id_variable=NEW_TOKEN_ID_VARIABLE,
        secret_variable=NEW_TOKEN_SECRET_VARIABLE,
        stdin=stdin,
        environ=environ,
        prompt="new Modal token",
    )
    if secret is None:
        raise RotationError("the new token's secret is missing (expected the id and the secret)")
    token = ModalToken(token_id, secret)
    steps.say(f"read token {token.masked} from {source.read_from}")
    return token


def _new_token_problems(
    old: ModalToken,
    old_identity: TokenIdentity | None,
    new: ModalToken,
    new_identity: TokenIdentity | None,
) -> list[str]:
    if new.id.reveal() == old.id.reveal():
        return ["it is the current token"]
    if new_identity is None:
        return [f"Modal rejects the new token {new.masked}"]
    if old_identity is not None and new_identity.workspace_id != old_identity.workspace_id:
        return [
            f"the new token belongs to workspace '{new_identity.workspace_name}', the current "
            f"one to '{old_identity.workspace_name}'"
        ]
    return []


def _update_roles(
    driver: StackDriver,
    raw: Mapping[str, RawValue],
    slot: TokenSlot,
    old_identity: TokenIdentity | None,
    new_identity: TokenIdentity,
) -> list[str]:
    """Give a new service user the old one's role; stop managing the old one (it keeps its role
    in Modal until it is revoked, because the hook never touches users left out of the config)."""
    roles = service_user_roles(raw)
    changes = []
    old_user = (
        old_identity.principal if old_identity and old_identity.kind == "service_user" else None
    )
    if new_identity.kind == "service_user" and new_identity.principal not in roles:
        role = roles.get(old_user or "", slot.default_role)
        driver.set_config(role_key(new_identity.principal), role, secret=False, path=True)
        changes.append(f"modalServiceUserRoles: {new_identity.principal} = {role}")
    if old_user and old_user in roles and old_user != new_identity.principal:
        driver.remove_config(role_key(old_user), path=True)
        changes.append(
            f"modalServiceUserRoles: {old_user} removed (keeps its Modal role until revoked)"
        )
    return changes


def _revoke_instructions(
    old: ModalToken,
    identity: TokenIdentity | None,
    slot: TokenSlot,
    stack: str,
    resume_hint: str,
) -> str:
    if identity is not None and identity.kind == "service_user":
        manual = (
            f"`modal workspace service-users delete {identity.principal}` (a service user has "
            "exactly one token; check no other stack uses it)"
        )
    else:
        manual = (
            f"`modal workspace member-tokens delete <the id ending {old.id.reveal()[-4:]}>` or the "
            "Modal dashboard, Settings > Tokens"
        )
    return (
        f"NOT revoked yet: the old token {old.masked} ({_who(identity)}) still works.\n"
        f"Once CI has deployed with the new token, revoke it with: {resume_hint} --revoke-old\n"
        f"(or by hand: {manual}, then `pulumi config rm --stack {stack} {slot.previous_id_key}` "
        f"and `{slot.previous_secret_key}`)"
    )
