"""`ModalBudget`: the spend cap of the stack's Modal environment, per billing cycle.

Whoever may call the GPU function can run code in it and spend GPU time (README: "Who can invoke
the function"), so each environment gets a cap (`rentagpu:monthlyBudgetDollars`; required in prod).
Modal 1.6.4's SDK and CLI do not expose budgets; the protocol has them, by environment id:
`EnvironmentSetBudget(environment_id, cycle_budget_dollars | clear_budget)` and
`EnvironmentGetBudget(environment_id) -> cycle_budget_dollars (optional: unset = no cap),
effective_cycle_spend_limit, current_cycle_usage, spend_limit_reached` (modal_proto/api_pb2.pyi
EnvironmentSetBudgetRequest, EnvironmentGetBudgetResponse; every amount a double).

What the provider guarantees:
- `create` and `update` set the cap on the environment found by name (EnvironmentList, as
  `ModalEnvironment` finds it); an environment that does not exist is a clear error.
- `read` (`pulumi refresh`) reports the cap Modal holds, so a cap changed or removed by hand is
  drift, and a deleted environment reports the budget gone. Only the cap is recorded: the spend so
  far changes by the minute and would make every refresh look like drift (`budget_status` reads it
  for whoever wants it, e.g. an audit).
- `diff` also asks Modal for the live cap, so the next `pulumi up` restores a cap removed or
  changed by hand even without a refresh first. If Modal cannot be asked (no token during a
  preview), it falls back to the state, logged.
- `delete` clears the cap (the environment then has none); an environment already gone is fine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from infra.core.config import StackConfig
from infra.core.errors import Failure, ModalHookError
from infra.core.resource_types import MODAL_BUDGET_NAME, MODAL_MODULE
from infra.modal_hook import validation
from infra.modal_hook.client import DEFAULT_POLICY, CallPolicy, ModalApi, run_modal
from infra.modal_hook.environment import find_environment
from infra.modal_hook.schema import Field, Schema, SchemaProvider

log = logging.getLogger(__name__)

# The share of the cap at which an audit should speak up (see `budget_finding`).
WARN_AT_SHARE = 0.8

SCHEMA = Schema(
    (
        # A budget of another environment is another budget: set the new one, then clear the old.
        Field(
            "environment_name",
            check=lambda p, v, _: validation.environment_name(p, v),
            change="replace",
        ),
        Field(
            "monthly_budget_dollars",
            check=lambda p, v, _: validation.budget_dollars(p, v),
        ),
        Field("environment_id", output=True),
    )
)


@dataclass(frozen=True)
class ModalBudgetArgs:
    environment_name: pulumi.Input[str]
    monthly_budget_dollars: pulumi.Input[float]

    @classmethod
    def from_config(
        cls, config: StackConfig, environment_name: pulumi.Input[str]
    ) -> ModalBudgetArgs | None:
        """The stack's cap, or None when its config sets none (dev may run without one)."""
        dollars = config.modal.monthly_budget_dollars
        if dollars is None:
            return None
        return cls(environment_name=environment_name, monthly_budget_dollars=dollars)


@dataclass(frozen=True)
class BudgetStatus:
    """An environment's budget as Modal reports it; `cap` None means no cap is set."""

    environment: str
    cap: float | None
    effective_limit: float
    usage: float
    limit_reached: bool


def budget_finding(status: BudgetStatus, share: float = WARN_AT_SHARE) -> str | None:
    """What an audit should report about `status`, or None when nothing is worth a finding.

    Pure: no call to Modal. A finding when the spend limit is reached, when usage has reached
    `share` of the cap, or when there is no cap at all.
    """
    where = f"Modal environment '{status.environment}'"
    if status.limit_reached:
        return (
            f"{where} has reached its spend limit (${status.usage:,.2f} of "
            f"${status.effective_limit:,.2f}): Modal stops its work until the next cycle or a "
            "higher cap (rentagpu:monthlyBudgetDollars, then `pulumi up`)"
        )
    if status.cap is None:
        return f"{where} has no spend cap: set rentagpu:monthlyBudgetDollars and run `pulumi up`"
    if status.cap > 0 and status.usage >= share * status.cap:
        return (
            f"{where} has spent ${status.usage:,.2f}, {status.usage / status.cap:.0%} of its "
            f"${status.cap:,.2f} cap this cycle (findings start at {share:.0%})"
        )
    return None


class ModalBudgetProvider(SchemaProvider):
    """Dynamic provider for `ModalBudget`."""

    schema = SCHEMA

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        live = dict(olds)
        name = olds.get("environment_name")
        if isinstance(name, str) and name == news.get("environment_name"):
            try:
                status = budget_status(name, self.policy)
            except ModalHookError as error:
                log.warning(
                    "could not read the live budget of %r; using the state: %s", name, error
                )
            else:
                if status is not None:
                    live["monthly_budget_dollars"] = status.cap
        return SCHEMA.diff(live, news)

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = props["environment_name"]
        outs = self._set(name, props["monthly_budget_dollars"], f"set the budget of '{name}'")
        return CreateResult(id_=name, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        name = news["environment_name"]
        dollars = news["monthly_budget_dollars"]
        return UpdateResult(self._set(name, dollars, f"update the budget of '{name}'"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        name = props.get("environment_name") or id_
        status = budget_status(name, self.policy)
        if status is None:
            log.warning("Modal environment %r no longer exists, nor its budget", name)
            return ReadResult(id_="", outs={})
        outs = {**props, "environment_name": name, "monthly_budget_dollars": status.cap}
        return ReadResult(id_=id_, outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        name = props.get("environment_name") or id_

        async def operation(api: ModalApi) -> None:
            from modal_proto import api_pb2

            env = await find_environment(api, name)
            if env is None:
                log.info("Modal environment %r is gone, and its budget with it", name)
                return
            request = api_pb2.EnvironmentSetBudgetRequest(environment_id=env.id, clear_budget=True)
            await api.call("EnvironmentSetBudget", request)

        run_modal(f"clear the budget of Modal environment '{name}'", operation, policy=self.policy)

    def _set(self, name: str, dollars: float, action: str) -> dict[str, Any]:
        async def operation(api: ModalApi) -> dict[str, Any]:
            from modal_proto import api_pb2

            env = await find_environment(api, name)
            if env is None:
                raise api.error(
                    Failure.NOT_FOUND,
                    f"environment '{name}' does not exist. The ModalEnvironment resource must "
                    "come first (pass its environment_name output into the budget).",
                )
            log.info("Modal environment %r: spend cap %s dollars per cycle", name, dollars)
            request = api_pb2.EnvironmentSetBudgetRequest(
                environment_id=env.id, cycle_budget_dollars=float(dollars)
            )
            await api.call("EnvironmentSetBudget", request)
            return {
                "environment_name": name,
                "monthly_budget_dollars": dollars,
                "environment_id": env.id,
            }

        return run_modal(action, operation, policy=self.policy)


class ModalBudget(pulumi.dynamic.Resource, module=MODAL_MODULE, name=MODAL_BUDGET_NAME):
    """The spend cap of one Modal environment (see the module docstring)."""

    environment_name: pulumi.Output[str]
    monthly_budget_dollars: pulumi.Output[float]
    environment_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        args: ModalBudgetArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        provider: ModalBudgetProvider | None = None,
    ) -> None:
        props = SCHEMA.props(
            {
                "environment_name": args.environment_name,
                "monthly_budget_dollars": args.monthly_budget_dollars,
            }
        )
        super().__init__(
            provider or ModalBudgetProvider(), resource_name, props, SCHEMA.options(opts)
        )


async def live_budget(api: ModalApi, environment: str) -> BudgetStatus | None:
    """The environment's budget as Modal reports it now, on an open connection; None when the
    environment is gone."""
    from modal_proto import api_pb2

    env = await find_environment(api, environment)
    if env is None:
        return None
    reply = await api.call(
        "EnvironmentGetBudget", api_pb2.EnvironmentGetBudgetRequest(environment_id=env.id)
    )
    return BudgetStatus(
        environment=environment,
        cap=reply.cycle_budget_dollars if reply.HasField("cycle_budget_dollars") else None,
        effective_limit=reply.effective_cycle_spend_limit,
        usage=reply.current_cycle_usage,
        limit_reached=reply.spend_limit_reached,
    )


def budget_status(environment: str, policy: CallPolicy = DEFAULT_POLICY) -> BudgetStatus | None:
    """The environment's budget as Modal reports it now, or None when the environment is gone."""
    return run_modal(
        f"read the budget of Modal environment '{environment}'",
        lambda api: live_budget(api, environment),
        policy=policy,
    )
