"""Incident listings of the AWS, Pulumi and GitHub credentials, and the jobs' own tokens (the Modal
ones are in `incident_places`)."""

from __future__ import annotations

from infra.core import names
from infra.core import resource_types as types
from infra.core.config_schema import full_key
from infra.tools.runbook.incident_places import (
    HISTORY,
    Listing,
    Place,
    StackFacts,
    github_places,
    verify_hint,
)
from infra.tools.runbook.modal_tokens import FALLBACK_ID_KEY
from infra.tools.runbook.person_tokens import (
    GITHUB_TOKENS_PAGE,
    PULUMI_TOKENS_PAGE,
)
from infra.tools.runbook.places import (
    GITHUB_READ_TOKEN_PLACE,
    SecretPlace,
    pulumi_scopes,
    pulumi_token_place,
)

OIDC_ONLY = (
    "nothing to verify: an OIDC role has no long-lived secret; its sessions end within the hour"
)


def aws_key_listing(facts: StackFacts) -> Listing:
    env, stack = facts.environment, facts.stack
    user = names.runtime_user_name(env)
    if facts.auth_mode != "access-key":
        note = (
            f"stack '{stack}' runs with awsAuth={facts.auth_mode or 'oidc'}: there is no "
            "long-lived key. Role sessions last at most 1 hour; to cut live ones now: IAM "
            f"console > Roles > {names.role_name(env, 'runtime')} > Revoke active sessions"
        )
        return Listing([], [note], [note], no_verify=OIDC_ONLY)
    key = names.runtime_access_key_resource(env, facts.serial)
    return Listing(
        places=[
            Place("AWS IAM", f"access key of user {user} (path {names.iam_path(env)}), {key}"),
            Place(
                "Modal",
                f"secret '{names.RUNTIME_SECRET_NAME}' in environment '{env}', keys "
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; containers of app "
                f"'{facts.app_name}' started before a rotation keep it until they stop",
            ),
            Place(
                "Pulumi state",
                f"{key} ({types.AWS_ACCESS_KEY}: id, encrypted secret) and "
                f"{names.modal_runtime_secret_resource(env)} (ModalSecret values, encrypted)",
            ),
            HISTORY,
            Place(
                "stack config",
                f"no copy; {full_key('accessKeySerial')} ({facts.serial}) is the lever",
            ),
            Place(
                "AWS CloudTrail",
                "every call signed with it: `aws cloudtrail lookup-events --lookup-attributes "
                "AttributeKey=AccessKeyId,AttributeValue=<key id>`",
            ),
            Place(
                "logs",
                f"the Modal logs of app '{facts.app_name}' if it ever printed its environment; "
                "CI never sees this key",
            ),
        ],
        revoke=[
            f"aws iam list-access-keys --user-name {user}",
            f"aws iam update-access-key --user-name {user} --access-key-id <key id> "
            "--status Inactive   (immediate and reversible; the app fails until the rotation)",
        ],
        rotate=[
            f"python -m infra rotate aws-key --stack {stack}",
            "  (bumps accessKeySerial; `pulumi up` creates the new key, updates the Modal secret, "
            "smoke-tests, deletes the old key; then checks AWS holds only the new key)",
            verify_hint("aws-key", stack),
        ],
    )


def aws_role_listing(facts: StackFacts) -> Listing:
    env = facts.environment
    purposes = [*names.ci_role_contexts(env)]
    if facts.auth_mode != "access-key":
        purposes.append("runtime")
    roles = [names.role_name(env, p) for p in purposes]
    return Listing(
        places=[
            Place(
                "AWS IAM",
                f"roles {', '.join(roles)}: assumed through OIDC (GitHub's for CI, Modal's for "
                "the runtime); no long-lived secret exists, each session lasts at most 1 hour",
            ),
        ],
        revoke=[
            "end every session issued so far: IAM console > Roles > the role > Revoke active "
            "sessions (it attaches the inline policy AWSRevokeOlderSessions, which denies "
            "sessions issued before now)",
            "if a trust was abused, check who can get the OIDC subject it trusts: "
            f"python -m infra access --stack {facts.stack}",
        ],
        rotate=[
            "no `rotate` kind: there is no secret to replace. Remove the AWSRevokeOlderSessions "
            "policy once the cause is fixed, or leave it: new sessions are not affected",
        ],
        no_verify=OIDC_ONLY,
    )


def aws_admin_listing(facts: StackFacts) -> Listing:
    return Listing(
        places=[
            Place(
                "machines",
                "the admin's own shell and ~/.aws (credentials, SSO cache) for their `pulumi up`; "
                "never in stack config, state or GitHub",
            )
        ],
        revoke=[
            "an access key: aws iam update-access-key --user-name <user> --access-key-id <id> "
            "--status Inactive",
            "an IAM Identity Center session: sign the user out, or revoke their sessions in "
            "the Identity Center console; a role session: Revoke active sessions on the role",
        ],
        rotate=[
            "no `rotate` kind: they are a person's own credentials; make new ones the way your "
            "organization issues them",
        ],
        no_verify="not verifiable here: the admin's credentials are not this project's",
    )


def _pulumi_scope_places(facts: StackFacts) -> list[tuple[str, SecretPlace]]:
    found = []
    for scope in pulumi_scopes(facts.environment):
        place = pulumi_token_place(facts.environment, scope)
        assert place is not None
        found.append((scope, place))
    return found


def pulumi_token_listing(facts: StackFacts) -> Listing:
    stack = facts.stack
    scoped = _pulumi_scope_places(facts)
    places = []
    for scope, place in scoped:
        _, *logs = github_places((place,), facts)
        places += [Place("GitHub", f"{scope} token: {place.describe()} in {facts.repo}"), *logs]
    places.append(
        Place(
            "machines",
            "whoever created each token (Pulumi Cloud shows it once); PULUMI_ACCESS_TOKEN in a "
            "shell or ~/.pulumi/credentials.json after `pulumi login`",
        )
    )
    return Listing(
        places=places,
        revoke=[
            f"{PULUMI_TOKENS_PAGE}: the Access tokens page of the team (Settings > Teams > the "
            "team), organization or person that owns the token > delete it",
            "the jobs that read it fail until it is replaced",
        ],
        rotate=[
            f"python -m infra rotate pulumi-token --stack {stack} --scope {scope}"
            for scope, _ in scoped
        ]
        + [verify_hint("pulumi-token", stack, single=True)],
        notes=[
            "with a self-managed backend (PULUMI_BACKEND_URL s3://...) there are no Pulumi "
            "tokens: the CI roles' access to the state bucket takes their place (aws-role)",
            "a Pulumi token reads (and decrypts) the stack's config and state: treat what they "
            f"hold as exposed too: python -m infra incident --stack {stack} "
            "--credential stack-secrets",
        ],
    )


def stack_secrets_listing(facts: StackFacts) -> Listing:
    """Whoever decrypted the stack's config and state holds what they hold."""
    stack = facts.stack
    held = []
    rotate = []
    if facts.fallback:
        held.append(f"the fallback deploy token ({FALLBACK_ID_KEY})")
        rotate.append(f"python -m infra incident --stack {stack} --credential modal-deploy-token")
    if facts.auth_mode == "access-key":
        held.append("the runtime AWS key (state and the Modal secret's values)")
        rotate.append(f"python -m infra incident --stack {stack} --credential aws-key")
    held.append("github:token, if someone set it (`pulumi config` shows it)")
    return Listing(
        places=[
            Place(
                "Pulumi backend",
                f"stack {stack}'s config and state, encrypted with the stack's secrets provider; "
                "obtainable by every Pulumi token of the stack and by admins",
            ),
            Place("what they hold", "; ".join(held)),
            Place(
                "what they do not hold",
                "CI's minted Modal tokens (sealed for GitHub: only GitHub can open them)",
            ),
            HISTORY,
        ],
        revoke=[
            "revoke the Pulumi token that leaked: python -m infra incident --stack "
            f"{stack} --credential pulumi-token",
        ],
        rotate=[
            *rotate,
            "the key itself: no `rotate` kind. `pulumi stack change-secrets-provider` re-encrypts "
            "config and the current state under a new provider; older checkpoints keep the old "
            "one, so rotating what they hold is what protects you",
        ],
        no_verify="verify each credential it holds with its own kind (see Rotate)",
    )


def github_read_listing(facts: StackFacts) -> Listing:
    return Listing(
        places=[
            *github_places((GITHUB_READ_TOKEN_PLACE,), facts),
            Place(
                "machines",
                "whoever created it (GitHub shows it once) and `gh auth` storage if it was used",
            ),
        ],
        revoke=[f"{GITHUB_TOKENS_PAGE}: the token > Delete; CI's lookups fail until replaced"],
        rotate=[
            f"python -m infra rotate github-read-token --stack {facts.stack}",
            verify_hint("github-read-token", facts.stack, single=True),
        ],
    )


def github_admin_listing(facts: StackFacts) -> Listing:
    repo = facts.repo
    return Listing(
        places=[
            Place(
                "machines",
                "never stored by this project: the admin's own shell (GITHUB_TOKEN of their "
                "`pulumi up`) and `gh auth` storage (~/.config/gh)",
            ),
            Place(
                "GitHub",
                f"nowhere by design; if a workflow reads {names.GITHUB_ADMIN_TOKEN_SECRET}, "
                "`python -m infra access` lists it as a violation: delete that secret "
                f"({SecretPlace(None, names.GITHUB_ADMIN_TOKEN_SECRET).gh_delete(repo)}, or with "
                "--env ENV) and the workflow's use of it",
            ),
            Place(
                "Pulumi state",
                "the GitHub provider's inputs, only if github:token was set in config (--verify "
                "checks every stack's config)",
            ),
        ],
        revoke=[
            f"{GITHUB_TOKENS_PAGE} (or Tokens (classic)): the token > Delete",
            "then review the repository's audit log and settings: environments, rulesets, "
            f"secrets, collaborators (python -m infra audit --stack {facts.stack})",
        ],
        rotate=[
            "no `rotate` kind: it is the admin's own token, never stored. Make a new one for the "
            "next admin `pulumi up`, then revoke the old as above",
            verify_hint("github-admin-token", facts.stack, single=True),
        ],
    )


def job_token_listing(facts: StackFacts) -> Listing:
    return Listing(
        places=[
            Place(
                "GitHub",
                "GITHUB_TOKEN of each workflow job, with the permissions the job declares; "
                "GitHub revokes it when the job ends (24 hours at most)",
            ),
        ],
        revoke=[
            "cancel the run that holds it: gh run cancel <run id> --repo " + facts.repo,
            "review what it wrote (issues, pull-request comments) in the repository's activity",
        ],
        rotate=["no `rotate` kind: GitHub issues a new one for every job"],
        no_verify="nothing to verify: a job's token ends with its job",
    )
