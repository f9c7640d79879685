"""What `modal deploy` ships, and how a deployment is identified: pure functions over the checkout.

Used twice: by the deploy stage when the program runs (the hashes are inputs, so the offline plan
shows them and a change of the app's source is a planned change), and by the deployment provider
just before it deploys (the source must still hash the same).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

SOURCE_PACKAGE = "modal_app"
APP_MODULE = "modal_app.app"
REVISION_VARIABLE = "GITHUB_SHA"
# The checkout this module lives in: what `pulumi up` ships when no other root is given.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

_SHA = re.compile(r"^[0-9a-f]{40}$")


def shipped_files(root: Path) -> list[Path]:
    """The files `modal deploy` ships: every `.py` file of the app package (Modal's default)."""
    package = root / SOURCE_PACKAGE
    return sorted(
        path for path in package.rglob("*.py") if path.is_file() and "__pycache__" not in path.parts
    )


def source_hash(root: Path | None = None) -> str:
    """A content hash of the shipped files and their paths; changes exactly when they do."""
    root = root or PROJECT_ROOT
    digest = hashlib.sha256(b"rentagpu modal_app source v1\0")
    for path in shipped_files(root):
        relative = path.relative_to(root).as_posix().encode()
        digest.update(relative + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def secret_fingerprint(values: Mapping[str, str]) -> str:
    """Changes whenever a runtime secret value does. Passed as a secret: it derives from them."""
    canonical = json.dumps(dict(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(b"rentagpu runtime secret v1\0" + canonical.encode()).hexdigest()


def resolve_revision(root: Path, environ: Mapping[str, str], fallback_hash: str) -> str:
    """The deployment tag: `GITHUB_SHA`, else the checkout's HEAD (+`-dirty`), else the hash."""
    sha = environ.get(REVISION_VARIABLE, "").strip().lower()
    if _SHA.fullmatch(sha):
        return sha
    head = _git(root, "rev-parse", "HEAD")
    if head is not None and _SHA.fullmatch(head):
        changes = _git(root, "status", "--porcelain", "--untracked-files=all", "--", SOURCE_PACKAGE)
        return head + ("-dirty" if changes else "")
    return "src-" + fallback_hash[:12]


def _git(root: Path, *args: str) -> str | None:
    # Local only: rev-parse and status never touch a remote.
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
