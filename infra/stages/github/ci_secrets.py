"""CI's Modal tokens as GitHub Actions secrets, sealed before they reach the GitHub provider.

Declared after the Modal stage, which mints each token and seals it with the public key of where
it goes (`ModalCiToken`): the secrets take only that ciphertext (`value_encrypted` and `key_id`),
so the GitHub provider, the plan and Pulumi state never hold a token in a form anyone but GitHub
can open. Where each goes is `names.ci_token_location`: the deploy token in the stack's
deployment environment; the read token in prod's main-only `prod-readonly`, or in per-stack
repository secrets for dev.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_github as github

from infra.core import names
from infra.core.resource_types import STAGE_GITHUB_CI_SECRETS


@dataclass(frozen=True)
class SealedToken:
    """A token sealed for one place in GitHub: its id and secret, and the key they were sealed to."""

    sealed_id: pulumi.Input[str]
    sealed_secret: pulumi.Input[str]
    key_id: pulumi.Input[str]


@dataclass(frozen=True)
class GitHubCiSecretsArgs:
    repository: str
    environment: str
    tokens: Mapping[str, SealedToken]  # by purpose (names.CI_TOKEN_ROLES)


def secret_options(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    """Options for every GitHub Actions secret this project declares.

    In pulumi-github 6.15.0 (terraform-provider-github v6.13.0) a changed value is an update in
    place: the value fields lost ForceNew in v6.11.0. Only a new environment, secret name or
    repository replaces the resource, and replacing by create-then-delete would delete the secret
    GitHub had just stored under the same name (pulumi-github #223). The bridge already deletes
    first for environment secrets (provider/resources.go, `DeleteBeforeReplace`); this says it for
    repository secrets too, and makes the order visible here.
    """
    return pulumi.ResourceOptions(parent=parent, delete_before_replace=True)


class GitHubCiSecrets(pulumi.ComponentResource):
    secrets: list[pulumi.CustomResource]

    def __init__(
        self, name: str, args: GitHubCiSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(STAGE_GITHUB_CI_SECRETS, name, None, opts)
        self.secrets = []
        for purpose, token in args.tokens.items():
            location, secret_names = names.ci_token_location(args.environment, purpose)
            values = (token.sealed_id, token.sealed_secret)
            for secret_name, sealed in zip(secret_names, values, strict=True):
                self.secrets.append(self._secret(args, location, secret_name, sealed, token.key_id))
        self.register_outputs({})

    def _secret(
        self,
        args: GitHubCiSecretsArgs,
        location: str | None,
        secret_name: str,
        sealed: pulumi.Input[str],
        key_id: pulumi.Input[str],
    ) -> pulumi.CustomResource:
        logical = names.github_secret_resource(location or args.environment, secret_name)
        if location is None:
            return github.ActionsSecret(
                logical,
                repository=args.repository,
                secret_name=secret_name,
                value_encrypted=sealed,
                key_id=key_id,
                opts=secret_options(self),
            )
        return github.ActionsEnvironmentSecret(
            logical,
            repository=args.repository,
            environment=location,
            secret_name=secret_name,
            value_encrypted=sealed,
            key_id=key_id,
            opts=secret_options(self),
        )
