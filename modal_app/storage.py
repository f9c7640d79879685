"""The three S3 calls the app makes, and only those: list a prefix, get an input, put an output.

They match the runtime policy (`infra.iam.runtime_policy`) one to one: ListBucket with a prefix
under the job prefixes, GetObject under the input prefix, PutObject under the output prefix. There
is no HeadObject or GetObject on outputs, so "is this job done?" is a listing of the output key,
and an input's size and ETag come from a listing too (before any byte of it is read).
Writes are conditional (`If-None-Match: *`, which the policy requires): of two retries racing on
one job id, S3 lets exactly one create the object and answers the other 412, so a result is never
written twice and never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from modal_app.errors import PayloadError, StorageError


@dataclass(frozen=True)
class Listed:
    """An object as a listing shows it: enough to size it and to name its content (the ETag)."""

    key: str
    size: int
    etag: str


class JobStore(Protocol):
    """What a job needs from storage; `S3JobStore` is the real one, tests may bring their own."""

    def read_input(
        self, key: str, field: str, max_bytes: int, *, etag: str = "", first_bytes: int = 0
    ) -> bytes: ...

    def stat(self, key: str) -> Listed | None: ...

    def list_keys(self, prefix: str, limit: int) -> list[str]: ...

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

    def read_input(
        self, key: str, field: str, max_bytes: int, *, etag: str = "", first_bytes: int = 0
    ) -> bytes:
        """The object's bytes (only its `first_bytes` when that is set, e.g. a file header); a
        missing or oversized object is the payload's fault. With `etag`, S3 refuses (412) to
        serve any other content than the one listed, so the bytes are the ones a job hashed."""
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if etag:
            request["IfMatch"] = etag
        if first_bytes:
            request["Range"] = f"bytes=0-{first_bytes - 1}"
            max_bytes = min(max_bytes, first_bytes)
        try:
            answer = self._s3.get_object(**request)
        except ClientError as error:
            if _status(error) == 412 or _code(error) == "PreconditionFailed":
                # Replaced since it was listed: a retry lists (and hashes) the new content.
                raise StorageError(f"{key!r} changed while the job read it; try again") from None
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

    def _list(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        try:
            answer = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=prefix, MaxKeys=limit)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"ListObjectsV2 Prefix={prefix!r} failed: {error}") from None
        return list(answer.get("Contents", []))

    def stat(self, key: str) -> Listed | None:
        """`key`'s size and ETag, by listing it as a prefix (the policy allows no HeadObject)."""
        # Keys are listed in byte order and `key` sorts before every longer key it prefixes, so
        # if it exists it is the first entry.
        for entry in self._list(key, 1):
            if entry.get("Key") == key:
                etag = str(entry.get("ETag", "")).strip('"')
                return Listed(key, int(entry.get("Size", 0)), etag)
        return None

    def list_keys(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` keys under `prefix`, in byte order."""
        return [str(entry.get("Key")) for entry in self._list(prefix, limit)]

    def exists(self, key: str) -> bool:
        """Whether `key` exists (see `stat`)."""
        return self.stat(key) is not None

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
