"""S3 answers that moto does not give but AWS does, played back with botocore's Stubber."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from modal_app.errors import PayloadError, StorageError
from modal_app.storage import S3JobStore

BUCKET = "rentagpu-dev-data"
KEY = "inputs/absent.npy"


@pytest.fixture
def s3():
    client = boto3.session.Session().client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="stub",
        aws_secret_access_key="stub",
    )
    with Stubber(client) as stubber:
        yield client, stubber


def test_a_403_for_a_missing_input_reads_as_no_such_object(s3) -> None:
    """AWS hides a missing key behind 403 from a principal whose ListBucket has a condition."""
    client, stubber = s3
    stubber.add_client_error("get_object", "AccessDenied", http_status_code=403)
    stubber.add_response(
        "list_objects_v2", {"KeyCount": 0}, {"Bucket": BUCKET, "Prefix": KEY, "MaxKeys": 1}
    )

    with pytest.raises(PayloadError, match="input_key: no object 'inputs/absent.npy'"):
        S3JobStore(client, BUCKET).read_input(KEY, "input_key", 1024)


def test_a_403_for_an_existing_input_stays_an_access_error(s3) -> None:
    client, stubber = s3
    stubber.add_client_error("get_object", "AccessDenied", http_status_code=403)
    stubber.add_response(
        "list_objects_v2",
        {"KeyCount": 1, "Contents": [{"Key": KEY}]},
        {"Bucket": BUCKET, "Prefix": KEY, "MaxKeys": 1},
    )

    with pytest.raises(StorageError, match="GetObject 'inputs/absent.npy' failed: AccessDenied"):
        S3JobStore(client, BUCKET).read_input(KEY, "input_key", 1024)


def test_a_conflicting_concurrent_write_that_landed_counts_as_done(s3) -> None:
    """409 ConditionalRequestConflict: another try's write was in flight; if it landed, we lost."""
    client, stubber = s3
    stubber.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
    stubber.add_response(
        "list_objects_v2",
        {"KeyCount": 1, "Contents": [{"Key": "outputs/j.json"}]},
        {"Bucket": BUCKET, "Prefix": "outputs/j.json", "MaxKeys": 1},
    )

    assert S3JobStore(client, BUCKET).put_once("outputs/j.json", b"{}", "application/json") is False
