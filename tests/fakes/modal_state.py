"""The in-memory Modal workspace behind the fake server: environments, roles, secrets, apps.

Plain data plus the rules the real service enforces that the hook depends on (names are unique per
environment, deleting an environment deletes what it holds, restricted environments grant access
only through roles). Every method takes the state's lock, because the server mutates it on its own
event-loop thread while a test reads it from the main thread.

Ids and timestamps are generated, never written down: `snapshot()` leaves them out so two servers
driven by different clients (the hook, the `modal` CLI) can be compared for the same outcome.
"""

from __future__ import annotations

import itertools
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ROLES = ("contributor", "viewer", "no-access")
_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """An id shaped like Modal's (`en-`, `st-`, `ap-`, `us-`, `su-` + 22 characters)."""
    return prefix + "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


@dataclass
class FakePrincipal:
    id: str
    name: str
    kind: str  # "user" or "service_user"
    workspace_manager: bool = False
    scoped: bool = False  # ServiceUser.scoped: the SDK never sets it (so False), the audit reads it


@dataclass
class FakeTokenTimes:
    """A token's dates as Modal reports them (epoch seconds; 0 = never, None = no expiry)."""

    created_at: float
    last_used_at: float = 0.0
    expires_at: float | None = None


@dataclass
class FakeEnvironment:
    id: str
    name: str
    restricted: bool
    created_at: float
    default: bool = False
    default_member_role: str = ""
    webhook_suffix: str = ""
    roles: dict[str, str] = field(default_factory=dict)  # principal id -> explicit role
    budget_dollars: float | None = None  # the spend cap per cycle; None: no cap
    usage_dollars: float = 0.0  # spent this cycle (a test sets it)


@dataclass
class FakeSecret:
    id: str
    environment: str
    name: str
    values: dict[str, str]
    created_at: float
    created_by: str


@dataclass
class FakeApp:
    """An app in an environment. `extra` is room for the deploy RPCs (functions, tags, history)."""

    id: str
    environment: str
    name: str
    state: int
    created_at: float
    description: str = ""
    deployment_tag: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class FakeModalState:
    """One workspace. Seeded with a default `main` environment and an owner, like a new account."""

    def __init__(self, workspace_name: str = "rentagpu-test") -> None:
        self.lock = threading.RLock()
        self.workspace_id = new_id("ac")
        self.workspace_name = workspace_name
        self.principals: dict[str, FakePrincipal] = {}
        self.environments: dict[str, FakeEnvironment] = {}
        self.secrets: dict[tuple[str, str], FakeSecret] = {}
        self.anonymous_secrets: dict[str, FakeSecret] = {}
        self.apps: dict[str, FakeApp] = {}
        self.token_times: dict[str, FakeTokenTimes] = {}  # by token id
        self.audit_events: list[Any] = []  # FakeAuditEvent (tests/fakes/modal_rpc_audit.py)
        self._clock = itertools.count(1)
        self._epoch = time.time()
        self.owner = self.add_user("owner", workspace_manager=True)
        self.add_environment("main", default=True)

    # -- time: strictly increasing, so list pagination by `created_before` never repeats an item
    def now(self) -> float:
        return self._epoch + next(self._clock) * 0.001

    # Principals.
    def add_user(self, name: str, *, workspace_manager: bool = False) -> FakePrincipal:
        with self.lock:
            principal = FakePrincipal(new_id("us"), name, "user", workspace_manager)
            self.principals[principal.id] = principal
            return principal

    def add_service_user(self, name: str, *, scoped: bool = False) -> FakePrincipal:
        with self.lock:
            principal = FakePrincipal(new_id("su"), name, "service_user", scoped=scoped)
            self.principals[principal.id] = principal
            return principal

    def remove_principal(self, principal_id: str) -> None:
        """Delete a principal (a service user) and its role in every environment."""
        with self.lock:
            self.principals.pop(principal_id, None)
            for env in self.environments.values():
                env.roles.pop(principal_id, None)

    def principal_named(self, name: str, kind: str) -> FakePrincipal | None:
        with self.lock:
            for principal in self.principals.values():
                if principal.name == name and principal.kind == kind:
                    return principal
            return None

    # Environments.
    def add_environment(
        self, name: str, *, restricted: bool = False, default: bool = False, default_role: str = ""
    ) -> FakeEnvironment:
        with self.lock:
            env = FakeEnvironment(
                id=new_id("en"),
                name=name,
                restricted=restricted,
                created_at=self.now(),
                default=default,
                default_member_role=default_role,
            )
            self.environments[name] = env
            return env

    def resolve_environment(self, name: str) -> FakeEnvironment | None:
        """The named environment; an empty name means the workspace default, as on Modal."""
        with self.lock:
            if not name:
                return next((e for e in self.environments.values() if e.default), None)
            return self.environments.get(name)

    def environment_by_id(self, environment_id: str) -> FakeEnvironment | None:
        with self.lock:
            return next((e for e in self.environments.values() if e.id == environment_id), None)

    def delete_environment(self, name: str) -> None:
        """Delete an environment and, as Modal does, everything inside it."""
        with self.lock:
            self.environments.pop(name)
            for key in [k for k in self.secrets if k[0] == name]:
                del self.secrets[key]
            for app_id in [a.id for a in self.apps.values() if a.environment == name]:
                del self.apps[app_id]

    def role_of(self, env: FakeEnvironment, principal: FakePrincipal) -> tuple[str, bool]:
        """(role, explicitly assigned). Unassigned service users get no access to restricted
        environments and full access to others, unless scoped: a scoped service user reaches only
        the environments it holds a role in (our reading of `ServiceUser.scoped`, which Modal does
        not document; see README). Members follow the environment's default."""
        with self.lock:
            explicit = env.roles.get(principal.id)
            if explicit:
                return explicit, True
            if principal.kind == "service_user" and principal.scoped:
                return "no-access", False
            if not env.restricted:
                return "contributor", False
            if principal.kind == "service_user":
                return "no-access", False
            return env.default_member_role or "viewer", False

    def set_role(self, environment: str, principal_name: str, role: str) -> None:
        """Change a service user's role behind the hook's back (tests use the CLI for drift)."""
        with self.lock:
            principal = self.principal_named(principal_name, "service_user")
            assert principal is not None, principal_name
            self.environments[environment].roles[principal.id] = role

    # Secrets.
    def put_secret(
        self, environment: str, name: str, values: dict[str, str], created_by: str = "owner"
    ) -> FakeSecret:
        with self.lock:
            existing = self.secrets.get((environment, name))
            if existing is not None:
                existing.values = dict(values)
                return existing
            secret = FakeSecret(
                id=new_id("st"),
                environment=environment,
                name=name,
                values=dict(values),
                created_at=self.now(),
                created_by=created_by,
            )
            self.secrets[(environment, name)] = secret
            return secret

    def secret_values(self, environment: str, name: str) -> dict[str, str] | None:
        with self.lock:
            secret = self.secrets.get((environment, name))
            return dict(secret.values) if secret else None

    def secret_by_id(self, secret_id: str) -> FakeSecret | None:
        with self.lock:
            for secret in self.secrets.values():
                if secret.id == secret_id:
                    return secret
            return self.anonymous_secrets.get(secret_id)

    # Apps.
    def add_app(self, environment: str, name: str, *, state: int | None = None) -> FakeApp:
        from modal_proto import api_pb2

        with self.lock:
            app = FakeApp(
                id=new_id("ap"),
                environment=environment,
                name=name,
                state=api_pb2.APP_STATE_DEPLOYED if state is None else state,
                created_at=self.now(),
            )
            self.apps[app.id] = app
            return app

    def apps_in(self, environment: str) -> list[FakeApp]:
        with self.lock:
            return [a for a in self.apps.values() if a.environment == environment]

    # Comparison.
    def snapshot(self) -> dict[str, Any]:
        """What a user would check, without generated ids or timestamps."""
        with self.lock:
            names = {p.id: f"{p.kind}:{p.name}" for p in self.principals.values()}
            return {
                "environments": {
                    env.name: {
                        "restricted": env.restricted,
                        "roles": {names[pid]: role for pid, role in sorted(env.roles.items())},
                        "budget_dollars": env.budget_dollars,
                    }
                    for env in self.environments.values()
                },
                "secrets": {
                    f"{env}/{name}": dict(sorted(secret.values.items()))
                    for (env, name), secret in sorted(self.secrets.items())
                },
                "apps": sorted(f"{a.environment}/{a.name}" for a in self.apps.values()),
            }
