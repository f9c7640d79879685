"""The type token of every kind of resource the program declares, as the engine reports it.

Policies match on them, the runbook finds resources in exported state by them, and the offline
plan prints them; they are spelled once, here.
"""

from __future__ import annotations

# GitHub (pulumi-github)
GITHUB_ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
GITHUB_DEPLOYMENT_POLICY = (
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
)
GITHUB_ENVIRONMENT_SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
GITHUB_REPOSITORY_SECRET = "github:index/actionsSecret:ActionsSecret"
GITHUB_ENVIRONMENT_VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
GITHUB_REPOSITORY_VARIABLE = "github:index/actionsVariable:ActionsVariable"
GITHUB_RULESET = "github:index/repositoryRuleset:RepositoryRuleset"
GITHUB_WORKFLOW_PERMISSIONS = (
    "github:index/workflowRepositoryPermissions:WorkflowRepositoryPermissions"
)

# AWS (pulumi-aws)
AWS_ROLE = "aws:iam/role:Role"
AWS_USER = "aws:iam/user:User"
AWS_POLICY = "aws:iam/policy:Policy"
AWS_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
AWS_USER_POLICY = "aws:iam/userPolicy:UserPolicy"
AWS_GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
AWS_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
AWS_USER_POLICY_ATTACHMENT = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
AWS_ACCESS_KEY = "aws:iam/accessKey:AccessKey"
AWS_OIDC_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
AWS_BUCKET = "aws:s3/bucket:Bucket"
AWS_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"

# The Modal hook's dynamic resources: `pulumi-python:dynamic/MODULE:NAME` (infra/modal_hook).
MODAL_MODULE = "rentagpu"
MODAL_ENVIRONMENT_NAME = "ModalEnvironment"
MODAL_SECRET_NAME = "ModalSecret"
MODAL_APP_DEPLOYMENT_NAME = "ModalAppDeployment"
MODAL_BUDGET_NAME = "ModalBudget"
MODAL_CI_TOKEN_NAME = "ModalCiToken"


def dynamic(name: str) -> str:
    return f"pulumi-python:dynamic/{MODAL_MODULE}:{name}"


MODAL_ENVIRONMENT = dynamic(MODAL_ENVIRONMENT_NAME)
MODAL_SECRET = dynamic(MODAL_SECRET_NAME)
MODAL_APP_DEPLOYMENT = dynamic(MODAL_APP_DEPLOYMENT_NAME)
MODAL_BUDGET = dynamic(MODAL_BUDGET_NAME)
MODAL_CI_TOKEN = dynamic(MODAL_CI_TOKEN_NAME)

# The program's own components (infra/stages).
STAGE_GITHUB = "rentagpu:stage:GitHub"
STAGE_GITHUB_CI_VARIABLES = "rentagpu:stage:GitHubCiVariables"
STAGE_GITHUB_CI_SECRETS = "rentagpu:stage:GitHubCiSecrets"
STAGE_AWS = "rentagpu:stage:Aws"
STAGE_MODAL = "rentagpu:stage:Modal"
STAGE_DEPLOY = "rentagpu:stage:Deploy"
