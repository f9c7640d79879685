"""What every group of the fake Modal server's RPC handlers shares: who is calling, the errors it
answers with, name rules, and the authorization checks a handler makes before it acts."""

from __future__ import annotations

from dataclasses import dataclass

from grpclib import GRPCError, Status

from tests.fakes.modal_state import FakeEnvironment, FakeModalState, FakePrincipal


@dataclass(frozen=True)
class Caller:
    """Who made a call, resolved from the token headers."""

    principal: FakePrincipal
    token_id: str


def not_found(what: str) -> GRPCError:
    return GRPCError(Status.NOT_FOUND, what)


def valid_object_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name)


def valid_environment_name(name: str) -> bool:
    return (
        0 < len(name) <= 64
        and name[0].isalnum()
        and all(c.isalnum() or c in "-_" for c in name)
        and not name.lower().startswith("en-")
    )


class RpcBase:
    """Handlers run under the state lock, on the server's loop; they raise `GRPCError` to answer
    with a status. `server` is the `FakeModalServer` (tokens, recording)."""

    server: object
    state: FakeModalState

    def _require_manager(self, caller: Caller, action: str) -> None:
        if not caller.principal.workspace_manager:
            raise GRPCError(
                Status.PERMISSION_DENIED,
                f"Only workspace managers can {action}; {caller.principal.name} is not one",
            )

    def _require_access(self, env: FakeEnvironment, caller: Caller, *, write: bool) -> None:
        scoped = caller.principal.kind == "service_user" and caller.principal.scoped
        if caller.principal.workspace_manager or (not env.restricted and not scoped):
            return
        role, _ = self.state.role_of(env, caller.principal)
        allowed = ("contributor",) if write else ("contributor", "viewer")
        if role not in allowed:
            raise GRPCError(
                Status.PERMISSION_DENIED,
                f"{caller.principal.name} has role '{role}' in restricted environment '{env.name}'",
            )

    def _environment(self, name: str) -> FakeEnvironment:
        env = self.state.resolve_environment(name)
        if env is None:
            raise not_found(f"Environment '{name}' not found")
        return env
