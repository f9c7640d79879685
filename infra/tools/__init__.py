"""Operator commands, run as `python -m infra COMMAND` (see `cli`): the offline plan, the report
of engine JSON, and the runbook (rotation, incident response).

Tools may import any layer below them; nothing in the program (`infra.program`, `infra.stages`,
`infra.modal_hook`, `infra.policies`, `infra.core`) imports a tool. `tests/test_layers.py` holds
both rules.
"""
