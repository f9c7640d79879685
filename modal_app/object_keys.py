"""Which S3 keys a job may touch: inputs under the input prefix, outputs under the output prefix.

The IAM policy already confines the runtime principal to these prefixes; checking here as well
turns a would-be AccessDenied into a clear payload error before any call, and keeps the app safe
where the policy is broader than intended (an access key with more rights, a test account).
Keys are compared as S3 compares them, byte for byte: S3 never resolves `..`, but proxies,
mounts and humans reading a key do, so a key that only looks confined is refused as well.
"""

from __future__ import annotations

import re

from modal_app.errors import PayloadError
from modal_app.settings import Settings

MAX_KEY_BYTES = 1024  # S3's limit on a key
INPUT_SUFFIXES = (".npy", ".json")
# A job id becomes one path segment of the output key, so it may not contain '/'.
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The digest of what a result was computed from (see `output_key`): 128 bits of sha256, in hex.
INPUT_DIGEST = re.compile(r"^[0-9a-f]{32}$")
JOB_ID_ALLOWED = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
_SAFE_KEY_CHARS = re.compile(r"^[A-Za-z0-9!_.*'()/ +=,@-]+$")


def input_key(settings: Settings, field: str, key: str) -> str:
    """`key` itself, if it names an input object this app may read; else a `PayloadError`."""
    prefix = settings.input_prefix
    if "://" in key or key.startswith("arn:"):
        raise PayloadError(
            field,
            f"must be a key in the configured bucket, not a URL or ARN; e.g. '{prefix}data.npy'",
        )
    if not key.startswith(prefix) or len(key) == len(prefix):
        raise PayloadError(field, f"{key!r} is outside the input prefix {prefix!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise PayloadError(field, f"is longer than S3's {MAX_KEY_BYTES}-byte key limit")
    if not _SAFE_KEY_CHARS.fullmatch(key):
        raise PayloadError(
            field, "may contain only letters, digits, '/' and !_.*'() +=,@- (no control characters)"
        )
    segments = key[len(prefix) :].split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise PayloadError(field, f"{key!r} has an empty, '.' or '..' path segment")
    if not key.endswith(INPUT_SUFFIXES):
        raise PayloadError(field, f"{key!r} must end with one of: {', '.join(INPUT_SUFFIXES)}")
    return key


def job_prefix(settings: Settings, job_id: str) -> str:
    """The folder holding job `job_id`'s result. A job id cannot contain '/', so listing this
    prefix finds that job's results and no other job's."""
    if not JOB_ID.fullmatch(job_id):  # parse checked it already; this guards other callers
        raise PayloadError("job_id", f"{job_id!r} is not valid; expected {JOB_ID_ALLOWED}")
    return f"{settings.output_prefix}{job_id}/"


def output_key(settings: Settings, job_id: str, input_digest: str) -> str:
    """Where the result of job `job_id` computed from the input `input_digest` names lives: one
    object, so one conditional put publishes it.

    The digest is in the key because the runtime principal may list outputs but never read them
    (the policy grants no GetObject there): a listing of `job_prefix` is all a later call can see
    of an earlier result, so the key itself must say which input it came from. A job id reused
    with another input then finds a key with another digest, and is refused rather than handed
    someone else's result.
    """
    if not INPUT_DIGEST.fullmatch(input_digest):
        raise ValueError(f"not an input digest: {input_digest!r}")
    return f"{job_prefix(settings, job_id)}{input_digest}.json"


def digest_of(key: str) -> str:
    """The input digest an output key carries ('' for a key not written by `output_key`)."""
    name = key.rsplit("/", 1)[-1].removesuffix(".json")
    return name if INPUT_DIGEST.fullmatch(name) else ""
