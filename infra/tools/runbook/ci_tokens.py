"""`rotate ci-tokens`: replace the Modal tokens `pulumi up` mints for CI, with an overlap.

Each stack has one minted service user per CI purpose (`names.ci_service_user(env, purpose,
serial)`, the role `names.CI_TOKEN_ROLES[purpose]` in the stack's environment only). Bumping
`rentagpu:ciTokenSerial` names new `ModalCiToken` resources, so a full `pulumi up` mints new
service users, seals their tokens into the GitHub secrets (`names.ci_token_location`), and deletes
the old service users only at the end of a successful update: a failure anywhere leaves the old
ones, and the tokens GitHub holds keep working. The command checks in Modal (with the operator's
workspace-manager token) which of CI's service users exist before and after, that each new one
holds exactly its one role in the stack's environment and is scoped, that the old ones are gone,
and in the stack's state that the GitHub secrets were written with the new tokens' sealed values.

A stack whose config supplies the deploy token (the fallback, `rentagpu:modalTokenId`) keeps it:
`ModalCiToken` adopts it again under the new serial; rotate it with `rotate modal-token`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from infra.core import names
from infra.core import resource_types as types
from infra.core.config import config_value
from infra.core.config_schema import full_key
from infra.core.errors import RentagpuError, RotationError, StackUpError
from infra.tools.runbook.driver import StackDriver, StateResource
from infra.tools.runbook.modal_tokens import ServiceUser, list_service_users, uses_fallback
from infra.tools.runbook.places import ci_token_places, describe
from infra.tools.runbook.steps import Steps

SERIAL_KEY = full_key("ciTokenSerial")


def serial_of(name: str, environment: str, purpose: str) -> int | None:
    """The serial of one of CI's minted service users, or None for any other name."""
    _, _, tail = name.rpartition("-")
    if tail.isdigit() and names.ci_service_user(environment, purpose, int(tail)) == name:
        return int(tail)
    return None


@dataclass(frozen=True)
class CiUsers:
    """CI's minted service users of one stack as Modal lists them, by purpose."""

    environment: str
    by_purpose: Mapping[str, list[ServiceUser]]

    @classmethod
    def listed(cls, environment: str, purposes: tuple[str, ...]) -> CiUsers:
        users = list_service_users()
        return cls(
            environment,
            {
                purpose: [u for u in users if serial_of(u.name, environment, purpose) is not None]
                for purpose in purposes
            },
        )

    def user_names(self) -> list[str]:
        return sorted(u.name for users in self.by_purpose.values() for u in users)

    def problems(self, serial: int) -> list[str]:
        """What is not as a finished rotation to `serial` leaves it."""
        found = []
        for purpose, users in self.by_purpose.items():
            expected = names.ci_service_user(self.environment, purpose, serial)
            role = names.CI_TOKEN_ROLES[purpose]
            current = [u for u in users if u.name == expected]
            if not current:
                found.append(f"Modal has no service user '{expected}'")
            for user in current:
                if dict(user.roles) != {self.environment: role}:
                    found.append(
                        f"{user.describe()}: expected exactly {role} in '{self.environment}'"
                    )
                if not user.scoped:
                    found.append(f"'{user.name}' is not scoped: it may reach other environments")
            found += [
                f"the old service user '{u.name}' still exists" for u in users if u not in current
            ]
        return found


def rotate_ci_tokens(driver: StackDriver, *, resume: bool, out: TextIO) -> None:
    """Rotate CI's minted Modal tokens of the stack (see the module docstring)."""
    stack = driver.stack
    steps = Steps(out, 5)
    raw = driver.get_config()
    environment = config_value(raw, "environment") or stack
    serial = int(config_value(raw, "ciTokenSerial") or 1)
    fallback = uses_fallback(raw)
    purposes = tuple(p for p in names.CI_TOKEN_ROLES if not (fallback and p == "deploy"))
    resume_hint = f"python -m infra rotate ci-tokens --stack {stack} --resume"

    steps.step(f"Read stack '{stack}': ciTokenSerial {serial}")
    for purpose in names.CI_TOKEN_ROLES:
        steps.say(_origin(purpose, purpose in purposes, stack))

    steps.step("Ask Modal (your MODAL_TOKEN_*) which of CI's service users exist")
    before = CiUsers.listed(environment, purposes)
    for users in before.by_purpose.values():
        for user in users:
            steps.say(user.describe())
    if not before.user_names():
        steps.say("none yet: this update mints them")

    if resume:
        steps.step(f"Resume: ciTokenSerial stays {serial}")
    else:
        steps.step(f"Bump ciTokenSerial {serial} -> {serial + 1}")
        serial += 1
        driver.set_config(SERIAL_KEY, str(serial), secret=False)

    new_names = [names.ci_service_user(environment, p, serial) for p in purposes]
    steps.step(
        f"pulumi up: mint {', '.join(new_names)}, seal their tokens into GitHub, and only then "
        "delete the old service users"
    )
    try:
        driver.up()
    except StackUpError as error:
        raise RotationError(
            f"{error}\n{_still_there(environment, purposes, serial)} ciTokenSerial is {serial} "
            f"already; fix the cause, then run: {resume_hint}"
        ) from None

    steps.step("Check Modal and the stack's state")
    after = CiUsers.listed(environment, purposes)
    problems = after.problems(serial) + _state_problems(driver, environment, purposes, serial)
    if problems:
        raise RotationError(
            "the update finished but the checks failed:\n  - "
            + "\n  - ".join(problems)
            + f"\nfix the cause, then run: {resume_hint}"
        )
    _report(steps, stack, before, after)


def _report(steps: Steps, stack: str, before: CiUsers, after: CiUsers) -> None:
    for users in after.by_purpose.values():
        for user in users:
            steps.say(f"ok: {user.describe()}")
    gone = sorted(set(before.user_names()) - set(after.user_names()))
    steps.say("deleted: " + (", ".join(gone) if gone else "nothing (none existed before)"))
    for purpose in after.by_purpose:
        where = describe(ci_token_places(after.environment, purpose))
        steps.say(f"GitHub holds the {purpose} token in its {where}")
    kinds = [f"modal-{p}-token" for p in after.by_purpose]
    steps.say(
        "done. CI's next runs use the new tokens, and Modal refuses the old ones: with an old "
        f"token, `python -m infra incident --stack {stack} --credential {kinds[0]} --verify` "
        f"shows it ({' / '.join(kinds)})"
    )


def _origin(purpose: str, minted: bool, stack: str) -> str:
    if minted:
        return f"{purpose} token: minted by `pulumi up`, rotated here"
    return (
        f"{purpose} token: adopted from stack config ({full_key('modalTokenId')}, the fallback): "
        "not rotated here; rotate it with "
        f"`python -m infra rotate modal-token --stack {stack} --create-service-user NAME`"
    )


def _still_there(environment: str, purposes: tuple[str, ...], serial: int) -> str:
    """What a failed update left, checked for real: Pulumi deletes old users only at the end."""
    try:
        users = CiUsers.listed(environment, purposes)
    except RentagpuError as error:
        return f"Could not list Modal's service users to say what still works ({error})."
    old = [
        u.name
        for listed in users.by_purpose.values()
        for u in listed
        if u.name not in {names.ci_service_user(environment, p, serial) for p in purposes}
    ]
    if old:
        return (
            f"Nothing was deleted: {', '.join(sorted(old))} still exist, so the tokens GitHub "
            "holds keep working."
        )
    return "Modal lists none of CI's old service users: CI may hold no working token now."


def _state_problems(
    driver: StackDriver, environment: str, purposes: tuple[str, ...], serial: int
) -> list[str]:
    """The GitHub secrets in state must carry what the new tokens were sealed into."""
    try:
        resources = {r.name: r for r in driver.state_resources()}
    except RentagpuError as error:
        return [f"could not read the stack's state: {error}"]
    problems = []
    for purpose in purposes:
        token = resources.get(names.ci_token_resource(environment, purpose, serial))
        if token is None or token.type != types.MODAL_CI_TOKEN:
            problems.append(
                f"the state has no {names.ci_token_resource(environment, purpose, serial)}"
            )
            continue
        sealed = (token.outputs.get("sealed_token_id"), token.outputs.get("sealed_token_secret"))
        for place, value in zip(ci_token_places(environment, purpose), sealed, strict=True):
            problems += _secret_problem(resources, environment, place.location, place.name, value)
    return problems


def _secret_problem(
    resources: Mapping[str, StateResource],
    environment: str,
    location: str | None,
    secret_name: str,
    sealed: object,
) -> list[str]:
    logical = names.github_secret_resource(location or environment, secret_name)
    secret = resources.get(logical)
    if secret is None:
        return [f"the state has no GitHub secret {logical}"]
    written = secret.outputs.get("valueEncrypted")
    if written is not None and written != sealed:
        return [f"GitHub secret {secret_name} was not written with the new token ({logical})"]
    return []
