"""Entry point the engine runs (`python -m pulumi.policy ENGINE .` in this folder): serve the pack.

`PolicyPack(...)` starts the analyzer's gRPC server and blocks, so only the engine runs this file;
tests build the same policies with `infra.policy_pack.pack.build_policies()`.
"""

import sys
from pathlib import Path

# The engine starts this file from the pack's folder; the checks live in the project's `infra`.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from infra.policy_pack.pack import PACK_DESCRIPTION, PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    description=PACK_DESCRIPTION,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
)
