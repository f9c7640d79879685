"""The three S3 calls the app makes, and only those: list a prefix, get an input, put an output.

They match the runtime policy (`infra.iam.runtime_policy`) one to one: ListBucket with a prefix
under the job prefixes, GetObject under the input prefix, PutObject under the output prefix. There
is no HeadObject or GetObject on outputs, so "is this job done?" is a listing of the output key.
Writes are conditional (`If-None-Match: *`): of two retries racing on one job id, S3 lets exactly
one create the object and answers the other 412, so a result is never written twice.
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from modal_app.errors import PayloadError, StorageError


class JobStore(Protocol):
    """What a job needs from storage; `S3JobStore` is the real one, tests may bring their own."""

    def read_input(self, key: str, field: str, max_bytes: int) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def put_once(self, key: str, body: bytes, content_type: str) -> bool: ...


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3JobStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket

    def read_input(self, key: str, field: str, max_bytes: int) -> bytes:
        """The object's bytes; a missing or oversized object is the payload's fault."""
        try:
            answer = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            missing = PayloadError(field, f"no object {key!r} in bucket {self._bucket!r}")
            if _code(error) in ("NoSuchKey", "404"):
                raise missing from None
            # AWS answers a GetObject of a missing key with 403, not 404, unless the caller may
            # list the bucket unconditionally; ours may list only with an s3:prefix condition,
            # which a GetObject request does not carry. Listing the key tells the two apart.
            if _status(error) == 403 and not self.exists(key):
                raise missing from None
            raise StorageError(f"GetObject {key!r} failed: {_code(error) or error}") from None
        except BotoCoreError as error:
            raise StorageError(f"GetObject {key!r} failed: {error}") from None
        body = answer["Body"]
        try:
            size = int(answer.get("ContentLength", 0))
            if size > max_bytes:
                raise PayloadError(
                    field, f"object {key!r} is {size} bytes; this job reads at most {max_bytes}"
                )
            # Read one byte past the limit so a lying Content-Length cannot smuggle more in.
            data = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise PayloadError(field, f"object {key!r} is over {max_bytes} bytes")
        return data

    def exists(self, key: str) -> bool:
        """Whether `key` exists, by listing it as a prefix (the policy allows no HeadObject)."""
        try:
            # Keys are listed in byte order and `key` sorts before every longer key it prefixes,
            # so if it exists it is the first entry.
            answer = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"ListObjectsV2 Prefix={key!r} failed: {error}") from None
        return any(entry.get("Key") == key for entry in answer.get("Contents", []))

    def put_once(self, key: str, body: bytes, content_type: str) -> bool:
        """Create `key`; False if it already exists (another try of the same job won)."""
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _status(error) == 412 or _code(error) == "PreconditionFailed":
                return False
            if _status(error) == 409 and self.exists(key):
                # A racing write was in flight (ConditionalRequestConflict) and has now landed.
                return False
            raise StorageError(f"PutObject {key!r} failed: {_code(error) or error}") from None
        except BotoCoreError as error:
            raise StorageError(f"PutObject {key!r} failed: {error}") from None
        return True
