"""What the workflows read that is not secret, published to GitHub as variables: the AWS role
ARNs and region per stack, and (from the stack that owns repository settings) `MODAL_APP_NAME`.

Declared after the AWS stage (it needs the roles' ARNs). Role ARNs are not secrets (knowing one
grants nothing without a matching OIDC token), so they are variables: readable in logs, which makes
a wrong one easy to spot.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_github as github

from infra.core import names
from infra.core.resource_types import STAGE_GITHUB_CI_VARIABLES


@dataclass(frozen=True)
class GitHubCiVariablesArgs:
    repository: str
    environment: str
    region: str
    deploy_role_arn: pulumi.Input[str]
    preview_role_arn: pulumi.Input[str]
    drift_role_arn: pulumi.Input[str]
    readonly_environment: str | None = None  # prod only
    app_name: str | None = None  # the stack that owns repository-wide settings only


def ci_variable_values(
    args: GitHubCiVariablesArgs,
) -> dict[str | None, dict[str, pulumi.Input[str]]]:
    """The variables the workflows read, by where they live: a GitHub environment's name, or None
    for the repository. Pull-request previews run without an environment, so each stack's preview
    role and region are repository variables, named per stack."""
    where: dict[str | None, dict[str, pulumi.Input[str]]] = {
        args.environment: {"AWS_DEPLOY_ROLE_ARN": args.deploy_role_arn, "AWS_REGION": args.region}
    }
    repository: dict[str, pulumi.Input[str]] = {
        names.repository_name(args.environment, "PREVIEW_ROLE_ARN"): args.preview_role_arn,
        names.repository_name(args.environment, "AWS_REGION"): args.region,
    }
    if args.app_name is not None:
        repository[names.APP_NAME_VARIABLE] = args.app_name
    if args.readonly_environment is not None:
        where[args.readonly_environment] = {
            "AWS_DRIFT_ROLE_ARN": args.drift_role_arn,
            "AWS_REGION": args.region,
        }
    else:
        repository[names.repository_name(args.environment, "DRIFT_ROLE_ARN")] = args.drift_role_arn
    where[None] = repository
    return where


class GitHubCiVariables(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: GitHubCiVariablesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(STAGE_GITHUB_CI_VARIABLES, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for environment, variables in ci_variable_values(args).items():
            for variable_name, value in variables.items():
                if environment is None:
                    github.ActionsVariable(
                        names.slug(variable_name),
                        repository=args.repository,
                        variable_name=variable_name,
                        value=value,
                        opts=child,
                    )
                else:
                    github.ActionsEnvironmentVariable(
                        f"{environment}-{names.slug(variable_name)}",
                        repository=args.repository,
                        environment=environment,
                        variable_name=variable_name,
                        value=value,
                        opts=child,
                    )
        self.register_outputs({})
