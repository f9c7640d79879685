"""The Modal hook: Pulumi dynamic resources for the stack's Modal environment, secrets and app.

- `client`: the only module that touches the `modal` SDK's internals: one bounded connection per
  provider call, credentials from the environment at call time, one clear error per failure.
- `schema`, `validation`: each resource's properties declared once, and the pure checks of them.
- `environment`, `budget`, `ci_token`, `secret`, `deployment`: one resource each
  (`ModalEnvironment`, `ModalBudget`, `ModalCiToken`, `ModalSecret`, `ModalAppDeployment`), with
  its provider's CRUD; `app_source`, `deploy_command`, `live_app`, `function_call` (a deployed
  function called with CBOR, its output never unpickled) and `smoke` are the deployment's parts.

Importing this package imports neither `pulumi` nor `modal`; the resource modules import `pulumi`,
and `modal` is loaded inside provider methods, so the offline plan stays fast and makes no network
call.

Pinned by state: Pulumi pickles each provider object into the stack's state, by reference to its
class's module path. Once a stack has run `pulumi up`, these paths must keep working or that
stack's refresh, update and delete break: `infra.modal_hook.environment.ModalEnvironmentProvider`,
`infra.modal_hook.secret.ModalSecretProvider`, `infra.modal_hook.deployment.
ModalAppDeploymentProvider`, `infra.modal_hook.budget.ModalBudgetProvider`, and `infra.modal_hook.client.CallPolicy` (a provider attribute). To
move one later, leave an importable alias at the old path, or migrate the state
(docs/architecture.md).
"""
