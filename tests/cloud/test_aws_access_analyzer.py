"""AWS's own policy validator (IAM Access Analyzer) on every document the program renders.

Read-only: `ValidatePolicy` inspects a document and stores nothing. Needs AWS credentials
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) with access-analyzer:ValidatePolicy.
"""

from __future__ import annotations

import json

import pytest

from infra.tools.offline import render
from tests.cloud.conftest import CLOUD_CREDENTIALS, require
from tests.stacks import stack_config

pytestmark = pytest.mark.cloud

BLOCKING = {"ERROR", "SECURITY_WARNING"}


def analyzer():
    import boto3

    if CLOUD_CREDENTIALS.get("AWS_PROFILE"):
        session = boto3.Session(profile_name=CLOUD_CREDENTIALS["AWS_PROFILE"])
    else:
        creds = require("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        session = boto3.Session(
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CLOUD_CREDENTIALS.get("AWS_SESSION_TOKEN"),
        )
    return session.client(
        "accessanalyzer", region_name=CLOUD_CREDENTIALS.get("AWS_REGION", "us-east-1")
    )


@pytest.mark.parametrize("mode", ["oidc", "access-key"])
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_access_analyzer_finds_no_error_or_security_warning(stack, mode) -> None:
    client = analyzer()
    rendering = render(stack_config(stack, awsAuth=mode))
    checked = 0
    for resource in rendering.resources:
        for field, kind in (("policy", "IDENTITY_POLICY"), ("assumeRolePolicy", "RESOURCE_POLICY")):
            document = resource.inputs.get(field)
            if not isinstance(document, str) or resource.type == "aws:s3/bucketPolicy:BucketPolicy":
                continue
            extra = {}
            if kind == "RESOURCE_POLICY":
                extra["validatePolicyResourceType"] = "AWS::IAM::AssumeRolePolicyDocument"
            findings = client.validate_policy(policyDocument=document, policyType=kind, **extra)[
                "findings"
            ]
            blocking = [
                (f["findingType"], f["issueCode"]) for f in findings if f["findingType"] in BLOCKING
            ]
            assert blocking == [], f"{resource.name}.{field}: {json.dumps(findings, indent=2)}"
            checked += 1
    assert checked >= 6
