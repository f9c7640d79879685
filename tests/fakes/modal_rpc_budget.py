"""Budget RPCs of the fake Modal server: an environment's spend cap per billing cycle.

Shapes from modal 1.6.4's protocol (modal_proto/api_pb2.pyi; the SDK and CLI never call these):
`EnvironmentSetBudgetRequest{environment_id=1, optional double cycle_budget_dollars=2,
bool clear_budget=3}` -> Empty; `EnvironmentGetBudgetRequest{environment_id=1}` ->
`EnvironmentGetBudgetResponse{optional double cycle_budget_dollars=1 (unset: no cap),
double effective_cycle_spend_limit=2, double current_cycle_usage=3, bool spend_limit_reached=4}`.
Both take the environment's id, not its name. Who may set a budget is not in the SDK; the fake
asks for a workspace manager, as for the other environment settings, and lets anyone who may read
the environment read its budget.
"""

from __future__ import annotations

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from tests.fakes.modal_rpc_base import Caller, RpcBase, not_found
from tests.fakes.modal_state import FakeEnvironment


class BudgetRpcs(RpcBase):
    def _environment_by_id(self, environment_id: str) -> FakeEnvironment:
        env = self.state.environment_by_id(environment_id)
        if env is None:
            raise not_found(f"Environment '{environment_id}' not found")
        return env

    def rpc_EnvironmentSetBudget(
        self, request: api_pb2.EnvironmentSetBudgetRequest, caller: Caller
    ):
        self._require_manager(caller, "set environment budgets")
        env = self._environment_by_id(request.environment_id)
        if request.clear_budget:
            env.budget_dollars = None
        elif request.HasField("cycle_budget_dollars"):
            if request.cycle_budget_dollars < 0:
                raise GRPCError(Status.INVALID_ARGUMENT, "A budget cannot be negative")
            env.budget_dollars = request.cycle_budget_dollars
        else:
            raise GRPCError(Status.INVALID_ARGUMENT, "Set cycle_budget_dollars or clear_budget")
        return empty_pb2.Empty()

    def rpc_EnvironmentGetBudget(
        self, request: api_pb2.EnvironmentGetBudgetRequest, caller: Caller
    ):
        env = self._environment_by_id(request.environment_id)
        self._require_access(env, caller, write=False)
        reply = api_pb2.EnvironmentGetBudgetResponse(
            current_cycle_usage=env.usage_dollars,
            spend_limit_reached=env.budget_dollars is not None
            and env.usage_dollars >= env.budget_dollars,
        )
        if env.budget_dollars is not None:
            reply.cycle_budget_dollars = env.budget_dollars
            reply.effective_cycle_spend_limit = env.budget_dollars
        return reply
