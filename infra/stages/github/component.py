"""Stage 1: the stack's GitHub deployment environment, its protection and its secrets.

The environment (with its protection) is what makes the AWS deploy role safe: that role trusts any
job that names this environment, so the environment must exist, protected, before the role does.
The program therefore declares this stage first and makes the AWS stage depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_github as github

from infra.core import names
from infra.core.config import GitHubConfig
from infra.core.resource_types import STAGE_GITHUB
from infra.stages.github import repository
from infra.stages.github.ruleset import (
    MAIN_RULESET_NAME,
    main_ruleset_conditions,
    main_ruleset_rules,
)


def github_provider(owner: str) -> github.Provider:
    """The GitHub provider every GitHub resource and lookup of the stack is bound to.

    Explicit, because pulumi-github's default provider takes its owner from `github:owner` or
    GITHUB_OWNER, and without either from the token's own user (terraform-provider-github
    provider.go): with only GITHUB_TOKEN set, environments, secrets and rulesets would go to
    `<token user>/<repository>`.

    The token is never one of its inputs. pulumi-github's generated `Provider` copies GITHUB_TOKEN
    into its `token` input when none is passed (pulumi_github/provider.py: `if token is None:
    token = _utilities.get_env('GITHUB_TOKEN')`), and a provider's inputs are kept in the stack's
    state, which every holder of a read token of the stack can decrypt: the admin's token would be
    readable by drift checks and previews. So the SDK is not shown the variable while the provider
    is declared; the provider plugin, a process of its own started by the CLI, still reads
    GITHUB_TOKEN when it is configured (its schema defaults `token` to that variable).
    """
    hidden = os.environ.pop("GITHUB_TOKEN", None)
    try:
        return github.Provider("github", owner=owner)
    finally:
        if hidden is not None:
            os.environ["GITHUB_TOKEN"] = hidden


@dataclass(frozen=True)
class GitHubStageArgs:
    config: GitHubConfig
    environment: str
    is_prod: bool
    provider: github.Provider
    readonly_environment: str | None = None  # prod: see names.readonly_environment


def reviewer_ids(
    logins: Sequence[str], team_slugs: Sequence[str], opts: pulumi.InvokeOutputOptions
) -> tuple[pulumi.Output, pulumi.Output]:
    """Resolve logins and team slugs to the numeric ids GitHub's environment API requires.

    `get_user(...).id` is a string; a reviewer list of strings is rejected, so convert here. A team
    is looked up with `summary_only`: without it the provider lists every member and repository of
    the team (pulumi-github get_team docstring).
    """
    users = pulumi.Output.all(
        *[github.get_user_output(username=login, opts=opts).id for login in logins]
    )
    teams = pulumi.Output.all(
        *[github.get_team_output(slug=team, summary_only=True, opts=opts).id for team in team_slugs]
    )
    return (
        users.apply(lambda ids: [int(i) for i in ids]),
        teams.apply(lambda ids: [int(i) for i in ids]),
    )


class GitHubStage(pulumi.ComponentResource):
    environment: github.RepositoryEnvironment

    def __init__(
        self, name: str, args: GitHubStageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(STAGE_GITHUB, name, None, opts)
        self._provider = args.provider
        self._lookups = pulumi.InvokeOutputOptions(parent=self, provider=args.provider)
        facts = repository.lookup(args.config, args.is_prod, self._lookups)
        # Every resource names the repository through the checked facts, so none is created (not
        # even with --skip-preview) before GitHub has been asked whether it takes this stack.
        self._repository = facts.apply(lambda _: args.config.repository)
        self.ids = self._subject_ids(args, facts)
        self._deploy_environment(args)
        self._readonly_environment(args)
        self.ci_token_keys = self._ci_token_keys(args.environment)
        self.main_ruleset = None
        self.workflow_permissions = None
        if args.config.owns_repository_settings:
            self._repository_settings(args)
        self.register_outputs({"environment": self.environment.environment})

    def _deploy_environment(self, args: GitHubStageArgs) -> None:
        """The environment deploys run in (its secrets come from `GitHubCiSecrets`)."""
        cfg, env = args.config, args.environment
        reviewers = None
        if args.is_prod:
            users, teams = reviewer_ids(cfg.reviewers, cfg.reviewer_teams, self._lookups)
            reviewers = [github.RepositoryEnvironmentReviewerArgs(users=users, teams=teams)]
        self.environment = self._environment(
            env,
            reviewers=reviewers,
            # A reviewer must never approve their own deploy: that is a one-person release.
            prevent_self_review=args.is_prod,
            branches=cfg.deployment_branches,
            purpose="deploy",
        )
        self.environments = {env: self.environment}

    def _readonly_environment(self, args: GitHubStageArgs) -> None:
        """prod's read-only CI credentials live where only workflows running from main can read
        them, with no reviewer so the daily drift check runs unattended. They reach nothing of
        prod that writes (README: "What each credential can touch")."""
        self.readonly_environment = None
        if args.readonly_environment is not None:
            self.readonly_environment = self._environment(
                args.readonly_environment,
                reviewers=None,
                prevent_self_review=False,
                branches=("main",),
                purpose="run",
            )
            self.environments[args.readonly_environment] = self.readonly_environment

    def _ci_token_keys(self, env: str) -> dict[str, pulumi.Output]:
        """GitHub's public key (`key`, `key_id`) of each place CI's Modal tokens go, to seal them
        for. GitHub's REST docs: anyone with read access to the repository may read them."""
        keys: dict[str, pulumi.Output] = {}
        for purpose in names.CI_TOKEN_ROLES:
            location, _ = names.ci_token_location(env, purpose)
            if location is None:
                keys[purpose] = github.get_actions_public_key_output(
                    repository=self._repository, opts=self._lookups
                )
            else:
                keys[purpose] = github.get_actions_environment_public_key_output(
                    # Through the environment's output: its key exists once it does.
                    environment=self.environments[location].environment,
                    repository=self._repository,
                    opts=self._lookups,
                )
        return keys

    def _subject_ids(
        self, args: GitHubStageArgs, facts: pulumi.Output[repository.RepositoryFacts]
    ) -> pulumi.Output[tuple[int, int]]:
        """(owner id, repository id) for the CI roles' OIDC subjects, once the repository issues
        subjects of that form: the owner stack declares the template; the others check it."""
        ids = facts.apply(lambda f: (f.owner_id, f.repository_id))
        if args.config.owns_repository_settings:
            self.subject_template = github.ActionsRepositoryOidcSubjectClaimCustomizationTemplate(
                "oidc-subject-template",
                repository=self._repository,
                use_default=False,
                include_claim_keys=list(names.GITHUB_SUBJECT_CLAIMS),
                opts=pulumi.ResourceOptions(parent=self),
            )
            return ids
        self.subject_template = None
        template = github.get_actions_repository_oidc_subject_claim_customization_template_output(
            name=args.config.repository, opts=self._lookups
        )

        def checked(values: list) -> tuple[int, int]:
            problem = repository.subject_template_problem(values[1], values[2] or [])
            if problem:
                raise pulumi.RunError(f"GitHub repository {args.config.repository}: {problem}")
            return values[0]

        return pulumi.Output.all(ids, template.use_default, template.include_claim_keys).apply(
            checked
        )

    def _repository_settings(self, args: GitHubStageArgs) -> None:
        """Repository-wide settings, declared by the one stack that owns them (the variables the
        workflows read are `GitHubCiVariables`')."""
        child = pulumi.ResourceOptions(parent=self)
        self.main_ruleset = github.RepositoryRuleset(
            "main-ruleset",
            repository=self._repository,
            name=MAIN_RULESET_NAME,
            target="branch",
            enforcement="active",
            conditions=main_ruleset_conditions(),
            rules=main_ruleset_rules(args.config.required_approvals),
            # No bypass actors: not even admins merge to main without a pull request.
            bypass_actors=[],
            opts=child,
        )
        # Workflows get a read-only job token unless they ask for more, and can never approve a
        # pull request: with approval allowed, PR code holding `pull-requests: write` (the
        # preview's comment) could approve itself and satisfy main's review rule. GitHub's
        # "Workflow permissions" setting; the TF provider sends both fields on every write
        # (resource_github_workflow_repository_permissions.go), so both are stated.
        self.workflow_permissions = github.WorkflowRepositoryPermissions(
            "workflow-permissions",
            repository=self._repository,
            default_workflow_permissions="read",
            can_approve_pull_request_reviews=False,
            opts=child,
        )

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
                f"{name}-{purpose}-from-{names.slug(pattern)}",
                repository=self._repository,
                environment=environment.environment,
                branch_pattern=pattern,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[environment]),
            )
        return environment
