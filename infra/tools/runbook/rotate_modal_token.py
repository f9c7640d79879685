"""`rotate modal-token`: the fallback deploy token (`rentagpu:modalTokenId`/`modalTokenSecret`,
which `ModalCiToken` adopts), replaced by a new service user's token that is in use before the old
one is revoked (see `infra.tools.runbook.rotate` for the steps). A stack without the fallback mints
CI's tokens itself: `rotate ci-tokens`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from infra.core.config import RawValue, config_value
from infra.core.errors import RentagpuError, RotationError, StackUpError
from infra.tools.runbook.credential_input import (
    NEW_TOKEN_ID_VARIABLE,
    NEW_TOKEN_SECRET_VARIABLE,
    read_credential,
)
from infra.tools.runbook.driver import StackDriver
from infra.tools.runbook.holders import config_holders, role_key, service_user_roles
from infra.tools.runbook.modal_tokens import (
    FALLBACK_ID_KEY,
    FALLBACK_ROLE,
    FALLBACK_SECRET_KEY,
    PREVIOUS_ID_KEY,
    PREVIOUS_SECRET_KEY,
    ModalToken,
    TokenIdentity,
    create_service_user,
    identify_token,
    list_service_users,
    reaches_environment,
    revoke_modal_token,
    token_from_config,
    uses_fallback,
)
from infra.tools.runbook.places import deploy_token_places
from infra.tools.runbook.steps import Steps


@dataclass(frozen=True)
class NewTokenSource:
    create_service_user: str | None = None
    read_from: str | None = None  # "stdin" or "env"


@dataclass(frozen=True)
class _Tokens:
    """The two tokens of a rotation, and who Modal says each belongs to."""

    old: ModalToken
    old_identity: TokenIdentity | None
    new: ModalToken
    new_identity: TokenIdentity


def rotate_modal_token(
    driver: StackDriver,
    source: NewTokenSource | None,
    *,
    revoke_old: bool,
    peers: Mapping[str, StackDriver],
    out: TextIO,
    stdin: TextIO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Rotate the stack's fallback deploy token (see the module docstring); `source=None`
    resumes."""
    environ = os.environ if environ is None else environ
    stack = driver.stack
    steps = Steps(out, 7)
    raw = driver.get_config()
    environment = config_value(raw, "environment") or stack
    if not uses_fallback(raw):
        raise RotationError(
            f"stack '{stack}' mints CI's deploy token (its config has no {FALLBACK_ID_KEY}): "
            f"use `python -m infra rotate ci-tokens --stack {stack}`"
        )
    resume_hint = f"python -m infra rotate modal-token --stack {stack} --resume"
    if source is None:
        tokens = _resumed(raw, stack, steps)
    else:
        tokens = _switched(driver, raw, environment, source, resume_hint, steps, stdin, environ)
    old, new = tokens.old, tokens.new

    where = deploy_token_places(environment)
    steps.step(f"pulumi up: adopt the new token, seal it into GitHub's {where}")
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
        steps.say(_revoke_instructions(old, tokens.old_identity, stack, resume_hint))
        return
    _revoke(driver, tokens, peers, resume_hint, steps)


def _resumed(raw: Mapping[str, RawValue], stack: str, steps: Steps) -> _Tokens:
    """Steps 1-4 of a resumed rotation: both tokens are in the config already."""
    previous = token_from_config(raw, PREVIOUS_ID_KEY, PREVIOUS_SECRET_KEY)
    current = token_from_config(raw, FALLBACK_ID_KEY, FALLBACK_SECRET_KEY)
    if previous is None:
        raise RotationError(
            f"nothing to resume: stack '{stack}' has no rotation of its fallback deploy token in "
            f"progress ({PREVIOUS_ID_KEY} is not set)"
        )
    if current is None:
        raise RotationError(f"stack '{stack}' config lacks {FALLBACK_ID_KEY}/{FALLBACK_SECRET_KEY}")
    old, new = previous, current
    steps.step(f"Resume the rotation of the fallback deploy token in stack '{stack}'")
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
    steps.step("Config already switched; old token kept under " + PREVIOUS_ID_KEY)
    return _Tokens(old, old_identity, new, new_identity)


def _switched(
    driver: StackDriver,
    raw: Mapping[str, RawValue],
    environment: str,
    source: NewTokenSource,
    resume_hint: str,
    steps: Steps,
    stdin: TextIO,
    environ: Mapping[str, str],
) -> _Tokens:
    """Steps 1-4 of a new rotation: obtain and check the new token, keep the old one, switch."""
    stack = driver.stack
    if token_from_config(raw, PREVIOUS_ID_KEY, PREVIOUS_SECRET_KEY) is not None:
        raise RotationError(
            f"a rotation of the fallback deploy token in stack '{stack}' is already in progress "
            f"(its old token is kept in {PREVIOUS_ID_KEY}); finish it first: {resume_hint} "
            "--revoke-old"
        )
    steps.step(f"Read the fallback deploy token of stack '{stack}'")
    old = token_from_config(raw, FALLBACK_ID_KEY, FALLBACK_SECRET_KEY)
    if old is None:
        raise RotationError(
            f"stack '{stack}' config has {FALLBACK_ID_KEY} but no {FALLBACK_SECRET_KEY}: set "
            f"both (`pulumi config set --secret --stack {stack} KEY`, value on stdin), or remove "
            f"both and use `python -m infra rotate ci-tokens --stack {stack}`"
        )
    old_identity = identify_token(old, "current token")
    steps.say(f"current token {old.masked}: " + _who(old_identity))

    steps.step("Obtain the new token")
    new = _obtain_token(source, stdin, environ, steps)

    steps.step("Check the new token")
    new_identity = identify_token(new, "new token")
    problems = _new_token_problems(old, old_identity, new, new_identity, environment)
    if problems:
        raise RotationError("the new token was not used, nothing changed: " + "; ".join(problems))
    assert new_identity is not None
    steps.say(f"accepted: {new_identity.describe()}")

    steps.step("Keep the old token in the encrypted config, switch the stack to the new one")
    driver.set_config(PREVIOUS_ID_KEY, old.id.reveal(), secret=True)
    driver.set_config(PREVIOUS_SECRET_KEY, old.secret.reveal(), secret=True)
    for change in _update_roles(driver, raw, old_identity, new_identity):
        steps.say(change)
    driver.set_config(FALLBACK_ID_KEY, new.id.reveal(), secret=True)
    driver.set_config(FALLBACK_SECRET_KEY, new.secret.reveal(), secret=True)
    steps.say(f"{FALLBACK_ID_KEY}/{FALLBACK_SECRET_KEY} now hold {new.masked}")
    return _Tokens(old, old_identity, new, new_identity)


def _revoke(
    driver: StackDriver,
    tokens: _Tokens,
    peers: Mapping[str, StackDriver],
    resume_hint: str,
    steps: Steps,
) -> None:
    """Step 7: revoke the old token once no stack holds it, check Modal refuses it, forget it."""
    stack, old = driver.stack, tokens.old
    notes: list[str] = []
    holders = config_holders(old.id.reveal(), {stack: driver, **peers}, notes)
    holders = [h for h in holders if PREVIOUS_ID_KEY not in h]
    for note in notes:
        steps.say(f"note: {note}")
    if holders:
        raise RotationError(
            f"not revoking {old.masked}: it is still configured in " + "; ".join(holders) + ". "
            "Rotate those first (python -m infra rotate modal-token --stack OTHER ...), "
            f"then run: {resume_hint} --revoke-old"
        )
    steps.say(revoke_modal_token(old, tokens.old_identity, tokens.new_identity))
    if identify_token(old, "old token") is not None:
        raise RotationError(
            f"Modal still accepts the old token {old.masked} after revoking it; revoke it in the "
            "Modal dashboard (Settings > Tokens / Service users) and run again"
        )
    steps.say(f"Modal now rejects the old token {old.masked}")
    driver.remove_config(PREVIOUS_ID_KEY)
    driver.remove_config(PREVIOUS_SECRET_KEY)
    steps.say(f"removed the kept copy ({PREVIOUS_ID_KEY}) from the stack config")
    steps.say(
        "done. Check: python -m infra incident --stack "
        f"{stack} --credential modal-deploy-token --verify (old id on stdin)"
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
    environment: str,
) -> list[str]:
    """What makes the new token unfit for CI, checked before anything changes: what `pulumi up`
    (ModalCiToken's adoption) would refuse, found first."""
    if new.id.reveal() == old.id.reveal():
        return ["it is the current token"]
    if new_identity is None:
        return [f"Modal rejects the new token {new.masked}"]
    if old_identity is not None and new_identity.workspace_id != old_identity.workspace_id:
        return [
            f"the new token belongs to workspace '{new_identity.workspace_name}', the current "
            f"one to '{old_identity.workspace_name}'"
        ]
    if new_identity.kind != "service_user":
        return [
            f"it is the personal token of {new_identity.describe()}: CI must never hold a "
            "person's token (it reaches everything its owner can); use --create-service-user"
        ]
    return _other_roles(new_identity.principal, environment)


def _other_roles(user_name: str, environment: str) -> list[str]:
    """A service user that holds a role outside the stack's environment reaches another stack."""
    try:
        found = [u for u in list_service_users() if u.name == user_name]
    except RentagpuError as error:
        return [f"could not check the new service user's roles ({error})"]
    elsewhere = {env: role for u in found for env, role in u.roles.items() if env != environment}
    if elsewhere:
        roles = ", ".join(f"{role} in '{env}'" for env, role in sorted(elsewhere.items()))
        return [
            f"service user '{user_name}' also holds {roles}: CI's token of one stack must reach "
            f"only '{environment}'"
        ]
    return []


def _update_roles(
    driver: StackDriver,
    raw: Mapping[str, RawValue],
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
        role = roles.get(old_user or "", FALLBACK_ROLE)
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
        f"(or by hand: {manual}, then `pulumi config rm --stack {stack} {PREVIOUS_ID_KEY}` "
        f"and `{PREVIOUS_SECRET_KEY}`)"
    )
