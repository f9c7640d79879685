"""`incident --verify`: proof that nothing reachable still holds an old credential."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.core import names
from infra.core import resource_types as types
from infra.core.config import config_value
from infra.core.errors import RentagpuError
from infra.core.secrets import SecretStr, mask_id
from infra.tools.runbook.aws_keys import AwsAccess, AwsKey
from infra.tools.runbook.driver import StackDriver
from infra.tools.runbook.holders import config_holders, state_holders
from infra.tools.runbook.incident_kinds import GITHUB_KINDS, MODAL_KINDS
from infra.tools.runbook.modal_tokens import ModalToken, find_modal_token, identify_token

GITHUB_API_VARIABLE = "GITHUB_API_URL"
DEFAULT_GITHUB_API = "https://api.github.com"
# A self-hosted Pulumi Cloud's API (`pulumi login https://api.pulumi.example.com` sets it); a
# self-managed backend (s3://, file://) has no access tokens at all.
PULUMI_BACKEND_VARIABLE = "PULUMI_BACKEND_URL"
DEFAULT_PULUMI_API = "https://api.pulumi.com"


@dataclass
class Verdict:
    held: list[str] = field(default_factory=list)  # places that still hold the old credential
    unchecked: list[str] = field(default_factory=list)  # places that could not be checked
    clean: list[str] = field(default_factory=list)  # places checked and clean

    @property
    def ok(self) -> bool:
        return not self.held and not self.unchecked


def _token_status(url: str, headers: Mapping[str, str], login_field: str) -> str:
    """ "rejected" (HTTP 401), "works as LOGIN", or "unknown: ..." from one GET with the token."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310 - https or a test server
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            login = json.loads(reply.read() or b"{}").get(login_field, "?")
            return f"works as '{login}'"
    except urllib.error.HTTPError as error:
        return "rejected" if error.code == 401 else f"unknown: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"unknown: {type(error).__name__}"


def _github_token_status(token: str, environ: Mapping[str, str]) -> str:
    """GitHub's GET /user: 401 for a revoked or unknown token."""
    base = (environ.get(GITHUB_API_VARIABLE) or DEFAULT_GITHUB_API).rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    return _token_status(f"{base}/user", headers, "login")


def _pulumi_token_status(token: str, environ: Mapping[str, str]) -> str:
    """Pulumi Cloud's GET /api/user, what `pulumi whoami` calls (pulumi/pulumi
    pkg/backend/httpstate/client/client.go, GetPulumiAccountDetails); the API answers 401 "if
    the token is missing or invalid" (pulumi.com/docs, Pulumi Cloud REST API, API Basics)."""
    base = (environ.get(PULUMI_BACKEND_VARIABLE) or DEFAULT_PULUMI_API).rstrip("/")
    if not base.startswith(("https://", "http://")):
        return f"unknown: {PULUMI_BACKEND_VARIABLE} is a self-managed backend, which has no tokens"
    if base == "https://app.pulumi.com":
        base = DEFAULT_PULUMI_API
    headers = {"Authorization": f"token {token}", "Accept": "application/vnd.pulumi+8"}
    return _token_status(f"{base}/api/user", headers, "githubLogin")


def verify(
    credential: str,
    driver: StackDriver,
    old_id: SecretStr,
    old_secret: SecretStr | None,
    *,
    peers: Mapping[str, StackDriver],
    environ: Mapping[str, str] | None = None,
) -> Verdict:
    environ = os.environ if environ is None else environ
    verdict = Verdict()
    needle = old_id.reveal()
    stack = driver.stack

    notes: list[str] = []
    held = config_holders(needle, {stack: driver, **peers}, notes)
    verdict.held += held
    verdict.unchecked += notes
    if not held:
        verdict.clean.append("config of stacks " + ", ".join([stack, *peers]))

    try:
        resources = driver.state_resources()
    except RentagpuError as error:
        verdict.unchecked.append(f"Pulumi state of stack '{stack}': {error}")
    else:
        holders = state_holders(resources, needle)
        for resource in holders:
            what = f"Pulumi state of stack '{stack}': {resource.type} {resource.name}"
            if resource.type == types.MODAL_SECRET:
                what += f" (the Modal secret '{names.RUNTIME_SECRET_NAME}' as Pulumi last wrote it)"
            verdict.held.append(what)
        if not holders:
            verdict.clean.append(f"Pulumi state of stack '{stack}' ({len(resources)} resources)")

    if credential in MODAL_KINDS:
        _verify_modal(verdict, needle, old_id, old_secret)
    elif credential == "aws-key":
        _verify_aws(verdict, driver, old_id, old_secret, environ)
    elif credential in GITHUB_KINDS:
        _verify_issuer(verdict, "GitHub", _github_token_status(needle, environ))
    elif credential == "pulumi-token":
        _verify_issuer(verdict, "Pulumi Cloud", _pulumi_token_status(needle, environ))
    else:
        verdict.unchecked.append(f"no issuer to ask about a {credential}")
    return verdict


def _verify_issuer(verdict: Verdict, issuer: str, status: str) -> None:
    if status == "rejected":
        verdict.clean.append(f"{issuer} rejects the old token (401)")
    elif status.startswith("works"):
        verdict.held.append(f"{issuer}: the old token still authenticates, {status}")
    else:
        verdict.unchecked.append(f"{issuer}: {status}")


def _verify_modal(
    verdict: Verdict, needle: str, old_id: SecretStr, old_secret: SecretStr | None
) -> None:
    try:
        holder = find_modal_token(needle)
    except RentagpuError as error:
        verdict.unchecked.append(f"Modal token lists: {error}")
    else:
        if holder:
            verdict.held.append(f"Modal: {holder} still exists")
        else:
            verdict.clean.append("Modal lists no such token")
    if old_secret is None:
        verdict.clean.append("(no old secret given: Modal's answer to the old token not tried)")
        return
    try:
        identity = identify_token(ModalToken(old_id, old_secret), "old token")
    except RentagpuError as error:
        verdict.unchecked.append(f"Modal TokenInfoGet with the old token: {error}")
        return
    if identity is not None:
        verdict.held.append(f"Modal: the old token still authenticates as {identity.describe()}")
    else:
        verdict.clean.append("Modal rejects the old token")


def _verify_aws(
    verdict: Verdict,
    driver: StackDriver,
    old_id: SecretStr,
    old_secret: SecretStr | None,
    environ: Mapping[str, str],
) -> None:
    raw = driver.get_config()
    env = config_value(raw, "environment") or driver.stack
    region = config_value(raw, "aws:region") or "us-east-1"
    bucket = config_value(raw, "bucket") or ""
    prefix = config_value(raw, "inputPrefix") or ""
    user = names.runtime_user_name(env)
    aws = AwsAccess(region, environ)
    key = AwsKey(old_id, old_secret)
    try:
        live = aws.access_key_ids(user)
    except RentagpuError as error:
        verdict.unchecked.append(f"AWS IAM user {user}: {error}")
    else:
        if old_id.reveal() in live:
            verdict.held.append(f"AWS: IAM user {user} still has access key {key.masked}")
        else:
            verdict.clean.append(f"AWS: IAM user {user} has no key {key.masked}")
    if old_secret is None or not bucket:
        return
    check = aws.key_check(key, bucket, prefix)
    if check == "rejected":
        verdict.clean.append(f"AWS refuses the old key {key.masked}")
    else:
        verdict.held.append(
            f"AWS: the old key {key.masked} is not refused (ListObjectsV2: {check})"
        )


def render_verdict(credential: str, stack: str, old_id: SecretStr, verdict: Verdict) -> str:
    shown = mask_id(old_id.reveal())
    lines = [f"Verify: does anything still hold {credential} {shown} of stack '{stack}'?"]
    lines += [f"  ok: {c}" for c in verdict.clean]
    lines += [f"  STILL HELD: {h}" for h in verdict.held]
    lines += [f"  NOT CHECKED: {u}" for u in verdict.unchecked]
    if verdict.ok:
        lines.append(f"nothing reachable holds {shown} any more")
    else:
        lines.append(
            f"{len(verdict.held)} place(s) still hold it, {len(verdict.unchecked)} could not be "
            "checked: revoke/rotate (see `incident` without --verify) and run again"
        )
    return "\n".join(lines)
