"""The security checklist as code: pure validators over a `Resource` view of each resource.

`model` holds what every check sees (`Resource`, `PolicyContext`) and says (`Violation`); each
policy has a module of its own; `checklist` lists them in order with their levels; `cross_stack`
compares stacks. They import only the core, so the same checks run in the real engine's policy
pack (`infra/policy_pack`) and in the offline plan (`python -m infra plan`). Messages name the
resource and say how to fix it; they never quote an input marked secret.
"""
