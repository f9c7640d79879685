"""Policy `secret-inputs-are-secret`: GitHub Actions and Modal secrets are fed only from values
marked secret."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from infra.core import resource_types as types
from infra.policies.model import (
    GITHUB_SECRET_TYPES,
    GITHUB_SECRET_VALUE_FIELDS,
    MODAL_SECRET,
    PolicyContext,
    Resource,
    modal_kind,
)


def check_secret_inputs(resource: Resource, ctx: PolicyContext) -> Iterator[str]:
    """GitHub Actions secrets and Modal secrets must be fed from values marked secret.

    A value that is not marked secret is stored in plain text in the state file and printed by
    `pulumi preview --diff`; it usually means a credential came from a plain config key or a
    literal in code.
    """
    props = resource.props
    if resource.type in GITHUB_SECRET_TYPES:
        where = f"GitHub Actions secret '{props.get('secretName')}'"
        if resource.type == types.GITHUB_ENVIRONMENT_SECRET:
            where += f" of environment '{props.get('environment')}'"
        for key in GITHUB_SECRET_VALUE_FIELDS:
            if key in set(props) and props[key] is not None and not resource.is_secret(key):
                yield (
                    f"{where} is fed from `{key}`, which is not a secret: pass "
                    "pulumi.Output.secret(...) of a value read with `pulumi config set --secret`, "
                    "and rotate the credential, which is now in the state in plain text"
                )
        return

    if modal_kind(resource) != MODAL_SECRET or resource.is_secret("values"):
        return
    where = f"Modal secret '{props.get('secret_name')}' of environment '{props.get('environment_name')}'"
    values = props.get("values")
    if values is None:
        return
    if not isinstance(values, Mapping):
        yield (
            f"{where}: `values` is not a secret; wrap the whole mapping in "
            "pulumi.Output.secret(...) or mark each value secret"
        )
        return
    plain = sorted(key for key in values if not resource.is_secret(f"values.{key}"))
    if plain:
        yield (
            f"{where} is fed plain (not secret) values for {', '.join(plain)}: mark each value "
            "secret (pulumi.Output.secret, secret config, or a secret output such as an access "
            "key's `secret`), or wrap the whole mapping in pulumi.Output.secret(...)"
        )


def applies_secret_inputs(resource: Resource) -> bool:
    return resource.type in GITHUB_SECRET_TYPES or modal_kind(resource) == MODAL_SECRET
