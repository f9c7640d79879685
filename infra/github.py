"""Stage 1: the stack's GitHub deployment environment, its protection and its secrets.

The environment (with its protection) is what makes the AWS deploy role safe: that role trusts any
job that names this environment, so the environment must exist, protected, before the role does.
The program therefore declares this stage first and makes the AWS stage depend on it.

`GitHubCiVariables` is declared after the AWS stage: it publishes the role ARNs the workflows use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_github as github

from infra import names
from infra.config import GitHubConfig

MAIN_RULESET_NAME = "rentagpu-protect-main"
# The checks of .github/workflows/ci.yml (job names as GitHub reports them) that a pull request
# into main must pass; tests keep this list and the workflow in step.
REQUIRED_CHECKS = (
    "tests (.ci/run)",
    "offline plan (dev)",
    "offline plan (prod)",
    "workflow audit (zizmor)",
    "secret scan (tree and history)",
    "lint (ruff)",
)


@dataclass(frozen=True)
class GitHubStageArgs:
    config: GitHubConfig
    environment: str
    is_prod: bool
    app_name: str
    modal_token_id: pulumi.Input[str]
    modal_token_secret: pulumi.Input[str]
    modal_read_token_id: pulumi.Input[str] | None = None
    modal_read_token_secret: pulumi.Input[str] | None = None
    readonly_environment: str | None = None  # prod: see AwsStageArgs.readonly_environment


def slug(text: str) -> str:
    """A logical-name-safe form of a branch pattern or key ('release/*' -> 'release-star')."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("*", "star")).strip("-")


def secret_options(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    """Options for every GitHub Actions secret this project declares.

    A changed secret value replaces the resource. Create-then-delete with the same id deletes the
    secret GitHub just stored (pulumi-github #223), so the old one is deleted first. The window
    without a secret is one API call long and is harmless here: the only jobs that read these
    secrets are deploys of this environment, which the deploy workflow's concurrency group
    serialises with the `pulumi up` that replaces them.
    """
    return pulumi.ResourceOptions(parent=parent, delete_before_replace=True)


def reviewer_ids(
    logins: Sequence[str], team_slugs: Sequence[str]
) -> tuple[pulumi.Output, pulumi.Output]:
    """Resolve logins and team slugs to the numeric ids GitHub's environment API requires.

    `get_user(...).id` is a string; a reviewer list of strings is rejected, so convert here.
    """
    users = pulumi.Output.all(*[github.get_user_output(username=login).id for login in logins])
    teams = pulumi.Output.all(*[github.get_team_output(slug=team).id for team in team_slugs])
    return (
        users.apply(lambda ids: [int(i) for i in ids]),
        teams.apply(lambda ids: [int(i) for i in ids]),
    )


class GitHubStage(pulumi.ComponentResource):
    environment: github.RepositoryEnvironment

    def __init__(
        self, name: str, args: GitHubStageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("rentagpu:stage:GitHub", name, None, opts)
        cfg, env = args.config, args.environment
        self._repository = cfg.repository
        child = pulumi.ResourceOptions(parent=self)

        reviewers = None
        if args.is_prod:
            users, teams = reviewer_ids(cfg.reviewers, cfg.reviewer_teams)
            reviewers = [github.RepositoryEnvironmentReviewerArgs(users=users, teams=teams)]
        self.environment = self._environment(
            env,
            reviewers=reviewers,
            # A reviewer must never approve their own deploy: that is a one-person release.
            prevent_self_review=args.is_prod,
            branches=cfg.deployment_branches,
            purpose="deploy",
        )
        self.token_secrets = self._environment_secrets(
            self.environment,
            env,
            zip(
                names.GITHUB_TOKEN_SECRETS,
                (args.modal_token_id, args.modal_token_secret),
                strict=True,
            ),
        )

        read_tokens = []
        if args.modal_read_token_id is not None and args.modal_read_token_secret is not None:
            read_tokens = [
                ("MODAL_READ_TOKEN_ID", args.modal_read_token_id),
                ("MODAL_READ_TOKEN_SECRET", args.modal_read_token_secret),
            ]
        self.readonly_environment = None
        self.read_token_secrets: list[pulumi.CustomResource] = []
        if args.readonly_environment is not None:
            # Read credentials can decrypt the stack's config (its Modal deploy token included),
            # so they live where only workflows running from main can read them.
            self.readonly_environment = self._environment(
                args.readonly_environment,
                reviewers=None,
                prevent_self_review=False,
                branches=("main",),
                purpose="run",
            )
            self.read_token_secrets = self._environment_secrets(
                self.readonly_environment, args.readonly_environment, read_tokens
            )
        else:
            # dev: PR previews run without an environment, so these are repository secrets, named
            # per stack so each has one owner.
            self.read_token_secrets = [
                github.ActionsSecret(
                    f"{env}-{slug(repository_name(env, suffix))}",
                    repository=cfg.repository,
                    secret_name=repository_name(env, suffix),
                    value=pulumi.Output.secret(value),
                    opts=secret_options(self),
                )
                for suffix, value in read_tokens
            ]

        self.app_name_variable = None
        self.main_ruleset = None
        if cfg.owns_repository_settings:
            self.app_name_variable = github.ActionsVariable(
                "modal-app-name",
                repository=cfg.repository,
                variable_name=names.APP_NAME_VARIABLE,
                value=args.app_name,
                opts=child,
            )
            self.main_ruleset = github.RepositoryRuleset(
                "main-ruleset",
                repository=cfg.repository,
                name=MAIN_RULESET_NAME,
                target="branch",
                enforcement="active",
                conditions=github.RepositoryRulesetConditionsArgs(
                    ref_name=github.RepositoryRulesetConditionsRefNameArgs(
                        includes=["refs/heads/main"], excludes=[]
                    )
                ),
                rules=github.RepositoryRulesetRulesArgs(
                    deletion=True,
                    non_fast_forward=True,
                    pull_request=github.RepositoryRulesetRulesPullRequestArgs(
                        required_approving_review_count=cfg.required_approvals,
                        dismiss_stale_reviews_on_push=True,
                        require_last_push_approval=cfg.required_approvals > 0,
                        required_review_thread_resolution=True,
                    ),
                    # What merges to main deploys dev at once: it must have passed CI first.
                    required_status_checks=github.RepositoryRulesetRulesRequiredStatusChecksArgs(
                        required_checks=[
                            github.RepositoryRulesetRulesRequiredStatusChecksRequiredCheckArgs(
                                context=check
                            )
                            for check in REQUIRED_CHECKS
                        ],
                        strict_required_status_checks_policy=True,
                    ),
                ),
                # No bypass actors: not even admins merge to main without a pull request.
                bypass_actors=[],
                opts=child,
            )

        self.register_outputs({"environment": self.environment.environment})

    def _environment(
        self,
        name: str,
        *,
        reviewers: list | None,
        prevent_self_review: bool,
        branches: tuple[str, ...],
        purpose: str,
    ) -> github.RepositoryEnvironment:
        """A GitHub environment only the given branches can use, and admins cannot bypass."""
        environment = github.RepositoryEnvironment(
            f"{name}-environment",
            repository=self._repository,
            environment=name,
            reviewers=reviewers,
            prevent_self_review=prevent_self_review,
            # The provider defaults this to true; admins bypassing protection defeats its point.
            can_admins_bypass=False,
            wait_timer=0,
            deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                protected_branches=False,
                custom_branch_policies=True,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for pattern in branches:
            github.RepositoryEnvironmentDeploymentPolicy(
                f"{name}-{purpose}-from-{slug(pattern)}",
                repository=self._repository,
                environment=environment.environment,
                branch_pattern=pattern,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[environment]),
            )
        return environment

    def _environment_secrets(
        self, environment: github.RepositoryEnvironment, name: str, secrets
    ) -> list[pulumi.CustomResource]:
        return [
            github.ActionsEnvironmentSecret(
                f"{name}-{slug(secret_name)}",
                repository=self._repository,
                environment=environment.environment,
                secret_name=secret_name,
                value=pulumi.Output.secret(value),
                opts=pulumi.ResourceOptions.merge(
                    secret_options(self), pulumi.ResourceOptions(depends_on=[environment])
                ),
            )
            for secret_name, value in secrets
        ]


def repository_name(environment: str, suffix: str) -> str:
    """Name of a per-stack repository variable or secret, e.g. RENTAGPU_DEV_DRIFT_ROLE_ARN."""
    return f"RENTAGPU_{environment.upper()}_{suffix}"


@dataclass(frozen=True)
class GitHubCiVariablesArgs:
    repository: str
    environment: str
    region: str
    deploy_role_arn: pulumi.Input[str]
    drift_role_arn: pulumi.Input[str]
    preview_role_arn: pulumi.Input[str] | None = None  # dev only
    readonly_environment: str | None = None  # prod only


def ci_variable_values(
    args: GitHubCiVariablesArgs,
) -> dict[str | None, dict[str, pulumi.Input[str]]]:
    """The variables the workflows read, by where they live: a GitHub environment's name, or None
    for the repository."""
    where: dict[str | None, dict[str, pulumi.Input[str]]] = {
        args.environment: {"AWS_DEPLOY_ROLE_ARN": args.deploy_role_arn, "AWS_REGION": args.region}
    }
    if args.readonly_environment is not None:
        where[args.readonly_environment] = {
            "AWS_DRIFT_ROLE_ARN": args.drift_role_arn,
            "AWS_REGION": args.region,
        }
    else:
        where[None] = {
            repository_name(args.environment, "DRIFT_ROLE_ARN"): args.drift_role_arn,
            repository_name(args.environment, "AWS_REGION"): args.region,
        }
        if args.preview_role_arn is not None:
            where[None][repository_name(args.environment, "PREVIEW_ROLE_ARN")] = (
                args.preview_role_arn
            )
    return where


class GitHubCiVariables(pulumi.ComponentResource):
    """Publishes the AWS role ARNs and region to GitHub, where the workflows read them.

    Role ARNs are not secrets (knowing one grants nothing without a matching OIDC token), so they
    are variables: readable in logs, which makes a wrong one easy to spot.
    """

    def __init__(
        self, name: str, args: GitHubCiVariablesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("rentagpu:stage:GitHubCiVariables", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for environment, variables in ci_variable_values(args).items():
            for variable_name, value in variables.items():
                if environment is None:
                    github.ActionsVariable(
                        slug(variable_name),
                        repository=args.repository,
                        variable_name=variable_name,
                        value=value,
                        opts=child,
                    )
                else:
                    github.ActionsEnvironmentVariable(
                        f"{environment}-{slug(variable_name)}",
                        repository=args.repository,
                        environment=environment,
                        variable_name=variable_name,
                        value=value,
                        opts=child,
                    )
        self.register_outputs({})
