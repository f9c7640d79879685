"""Calling one deployed version of a Modal function without ever unpickling what comes back.

The SDK's `Function.remote()` decodes each output by the `data_format` the server puts on it, and
unpickles PICKLE and UNSPECIFIED data, a failure's pickled exception and traceback included
(`_process_result`, modal 1.6.4 `modal/_utils/function_utils.py:527-583`). Unpickling runs code.
Here the caller is `pulumi up`, which holds the deploy credentials, and the version it calls can
be published by anyone else holding a deploy token of the environment. So this module speaks the
protocol of `.remote()` itself (`_Invocation`, `modal/_functions.py:149-345`) on the connection
`run_modal` opened, through `ModalApi.call` only, and decodes nothing but plain CBOR:

1. FunctionGet pins the version: `app_version`, as `Function.from_name(version=N)` sends it
   (`_functions.py:1444-1449`; `FunctionGetRequest`, `modal_proto/api_pb2.pyi:9304`). The handle
   metadata (`FunctionHandleMetadata`, pyi:9558) must list CBOR in `supported_input_formats` and
   have no `input_plane_url` (such a function is called through AttemptStart on another endpoint,
   `_functions.py:2028-2050`, which this module does not speak).
2. FunctionMap sends one input, pipelined, unary, SYNC, as `.remote()` does (`_functions.py:
   180-227`, `FunctionMapRequest` pyi:9775), built as `_create_input` builds it
   (`function_utils.py:602-654`): `cbor2.dumps(((payload,), {}))` with `data_format`
   DATA_FORMAT_CBOR and the handle's `use_method_name`. When Modal does not take the input with
   the call, FunctionPutInputs sends it (`_functions.py:229-245`).
3. FunctionGetOutputs is polled until an output arrives (`_functions.py:249-283`), within the
   operation's deadline (`CallPolicy.deadline_s`).
4. The output (`FunctionGetOutputsItem`, pyi:9188; its format is on the item, not in the
   `GenericResult`, pyi:10510) is judged by status and format:
   - SUCCESS is accepted only as DATA_FORMAT_CBOR with inline `data`, decoded by `decode_cbor`.
     A container answers a CBOR input in CBOR when the function's output formats include it
     (`modal/_runtime/container_io_manager.py:334-349`), as every non-web function's do by
     default (`_functions.py:600-612`).
   - Any other status reads only the `exception` and `traceback` text, which is all a container
     sends a CBOR caller (`container_io_manager.py:381-403`). `data`, `serialized_tb` and
     `tb_line_cache` hold pickles (`function_utils.py:538-568`) and are never read; when they
     come in PICKLE or UNSPECIFIED format the call is refused, naming the format.
   - An output stored as a blob (`data_blob_id`) is refused, not downloaded. A SYNC call's output
     goes to a blob only above `max_object_size_bytes`, 2 MiB by default (`container_io_manager.
     py:127-132`, `modal/_utils/blob_utils.py:37`); the healthcheck report is about 1 KB, and a
     download would fetch a URL the server names from the process that holds the credentials.

The app keeps Modal's default formats (PICKLE and CBOR, in and out), so this CBOR call gets CBOR
back and `.remote()` users keep their pickled results and errors. It does not set
`_experimental_restrict_output=True` (modal/app.py:936, 1143): that would answer every caller in
CBOR and send failures as text only (container_io_manager.py:381-403), so a user's `.remote()`
would raise a `RemoteError` instead of the app's own exception types (which `modal_app/errors.py`
keeps picklable for that), and it would protect no one from a hostile version, which picks its
own decorator. The refusal here is what protects.

Not done, unlike `.remote()`: resubmitting a failed input under the function's retry policy when
Modal asks the client to (`sync_client_retries_enabled`, `_functions.py:310-345`). A failed call
is one failed call; for the smoke job that means a rollback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from infra.core.errors import Failure, FunctionCallError
from infra.modal_hook.client import ModalApi

# The longest one poll asks Modal to hold for an output, and the slack its attempt gets on top
# (modal 1.6.4 OUTPUTS_TIMEOUT and ATTEMPT_TIMEOUT_GRACE_PERIOD, function_utils.py:498-499).
OUTPUTS_TIMEOUT_S = 55.0
POLL_GRACE_S = 5.0
# An inline input larger than this would have to go as a blob (blob_utils.py:37), which this
# module does not upload; a job payload is a few hundred bytes.
MAX_INLINE_INPUT_BYTES = 2 * 1024 * 1024

# The CBOR tags cbor2 6.3.0 decodes by default into Python objects (datetimes, Decimal, regular
# expressions, email messages, UUIDs, sets, IP addresses, shared references, ...). `decode_cbor`
# refuses each of them, and every other tag. Found by decoding every tag 0-65535 with the
# installed cbor2; tests/modal_hook/test_function_call.py repeats that check.
CBOR2_DEFAULT_TAGS = (
    *(0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100),
    *(256, 258, 260, 261, 1004, 43000, 55799),
)
MAX_DEPTH = 64
_PLAIN_SCALARS = (str, bytes, int, float, bool, type(None))

_NEVER_UNPICKLED = (
    "rentagpu decodes only DATA_FORMAT_CBOR and never unpickles what a call returns: unpickling "
    "runs code, here in the process that holds the deploy credentials"
)
_NOT_OURS = (
    "The app's function answers a CBOR call in CBOR, so the version called is not this "
    "repository's modal_app/, or the server is not Modal."
)


class _TagRefused(ValueError):
    pass


def _refuse_semantic(value: Any, immutable: bool) -> Any:
    raise _TagRefused("a CBOR tag")


def _refuse_unknown_tag(tag: Any, immutable: bool) -> Any:
    raise _TagRefused("a CBOR tag")


def _plain_problem(value: Any, depth: int = 0) -> str | None:
    """None if `value` is made of maps, arrays, text, bytes, numbers, booleans and null only."""
    if depth > MAX_DEPTH:
        return f"nesting deeper than {MAX_DEPTH}"
    if isinstance(value, _PLAIN_SCALARS):
        return None
    if isinstance(value, list):
        items: Any = value
    elif isinstance(value, dict):
        bad_key = next((k for k in value if not isinstance(k, (str, int))), None)
        if bad_key is not None:
            return f"a map key of type {type(bad_key).__name__}"
        items = value.values()
    else:
        return f"a value of type {type(value).__name__}"
    for item in items:
        problem = _plain_problem(item, depth + 1)
        if problem is not None:
            return problem
    return None


def decode_cbor(data: bytes) -> Any:
    """Decode CBOR into maps, arrays, text, bytes, numbers, booleans and null, or refuse it.

    cbor2 constructs objects for the tags in `CBOR2_DEFAULT_TAGS` by default and hands
    `tag_hook` any other tag; here every tag is refused before any object is built (a semantic
    decoder for each default tag, a `tag_hook` for the rest), as are CBOR's simple values and
    `undefined`, duplicate map keys and nesting deeper than `MAX_DEPTH`.
    """
    import cbor2

    try:
        value = cbor2.loads(
            data,
            tag_hook=_refuse_unknown_tag,
            semantic_decoders=dict.fromkeys(CBOR2_DEFAULT_TAGS, _refuse_semantic),
            max_depth=MAX_DEPTH,
            allow_duplicate_keys=False,
        )
    except cbor2.CBORError as exc:
        reason = f"CBOR rentagpu does not decode ({exc})"
    else:
        problem = _plain_problem(value)
        if problem is None:
            return value
        reason = f"CBOR rentagpu does not decode ({problem})"
    raise FunctionCallError(
        f"its output was refused: {reason}. rentagpu accepts only maps, arrays, text, bytes, "
        "numbers, booleans and null, as the app's jobs return. " + _NOT_OURS
    )


def _format_name(data_format: int) -> str:
    from modal_proto import api_pb2

    try:
        return api_pb2.DataFormat.Name(data_format)
    except ValueError:
        return f"data format {data_format}"


def _status_name(status: int) -> str:
    from modal_proto import api_pb2

    try:
        return api_pb2.GenericResult.GenericStatus.Name(status)
    except ValueError:
        return f"status {status}"


def judge_output(item: Any) -> Any:
    """The decoded value of a SUCCESS output in CBOR; `FunctionCallError` for anything else."""
    from modal_proto import api_pb2

    result = item.result
    data_format = item.data_format
    name = _format_name(data_format)
    if result.status == api_pb2.GenericResult.GENERIC_STATUS_SUCCESS:
        if data_format != api_pb2.DATA_FORMAT_CBOR:
            raise FunctionCallError(
                f"its output was refused: it came back as {name}, and {_NEVER_UNPICKLED}. "
                + _NOT_OURS,
                refused_format=name,
            )
        if result.WhichOneof("data_oneof") == "data_blob_id":
            raise FunctionCallError(
                "its output was refused: it came back as a blob to download, not inline; the "
                "app's results are far under Modal's 2 MiB inline limit, and rentagpu does not "
                "fetch blobs. " + _NOT_OURS
            )
        return decode_cbor(result.data)
    said = result.exception or "no message"
    pickled = result.WhichOneof("data_oneof") or result.serialized_tb or result.tb_line_cache
    if pickled and data_format in (api_pb2.DATA_FORMAT_PICKLE, api_pb2.DATA_FORMAT_UNSPECIFIED):
        raise FunctionCallError(
            f"the call ended with {_status_name(result.status)} and sent its error as {name} "
            f"data, which was refused: {_NEVER_UNPICKLED}. Modal's text for the error: {said}",
            refused_format=name,
        )
    if result.status == api_pb2.GenericResult.GENERIC_STATUS_FAILURE:
        raise FunctionCallError(f"it raised {said} in its container")
    raise FunctionCallError(f"Modal ended the call with {_status_name(result.status)}: {said}")


async def _await_output(api: ModalApi, function_call_id: str) -> Any:
    from modal_proto import api_pb2

    while True:
        budget = api.remaining_s() - 1.0  # a second to report, before the operation times out
        if budget <= 0:
            raise FunctionCallError(
                f"it returned no output within {api.policy.deadline_s:g} s; the call may still "
                "be running (see `modal app logs`)"
            )
        wait = min(OUTPUTS_TIMEOUT_S, budget)
        request = api_pb2.FunctionGetOutputsRequest(
            function_call_id=function_call_id,
            timeout=wait,
            last_entry_id="0-0",
            clear_on_success=True,
            requested_at=time.time(),
            start_idx=0,
            end_idx=0,
        )
        response = await api.call(
            "FunctionGetOutputs", request, attempt_timeout_s=min(wait + POLL_GRACE_S, budget)
        )
        if response.outputs:
            return response.outputs[0]
        await asyncio.sleep(api.policy.backoff(1))  # Modal long-polls; a fake may not


def _check_handle(handle: Any, where: str) -> None:
    """Refuse a function this module cannot call with CBOR on the control plane."""
    from modal_proto import api_pb2

    if api_pb2.DATA_FORMAT_CBOR not in handle.supported_input_formats:
        accepted = ", ".join(_format_name(f) for f in handle.supported_input_formats) or "none"
        raise FunctionCallError(
            f"{where} does not accept CBOR input (it accepts: {accepted}), and rentagpu calls "
            "functions only with CBOR, so that their output comes back as CBOR and is never "
            "unpickled. modal 1.6.4 declares CBOR input for every function that is not a web "
            "endpoint: redeploy the app with it."
        )
    if handle.input_plane_url:
        raise FunctionCallError(
            f"{where} is served through Modal's input plane ({handle.input_plane_url}), which "
            "rentagpu does not call; it calls functions through FunctionMap, as modal 1.6.4 does "
            "for every function without an input plane."
        )


async def call_function(
    api: ModalApi,
    *,
    app: str,
    function: str,
    version: int,
    environment: str,
    payload: Mapping[str, Any],
) -> Any:
    """Call version `version` of a deployed function with `payload`; return its decoded result.

    Raises `FunctionCallError` when the function failed, Modal ended the call, or the output was
    refused (see the module docstring), and `ModalCallError` when an RPC failed.
    """
    import cbor2
    from modal_proto import api_pb2

    where = f"function '{function}' of app '{app}' v{version} in environment '{environment}'"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        # The SDK sends app_version 0 for a lookup of no version in particular (_functions.py:
        # 1448): whatever is live, which the smoke job must never call instead of its version.
        raise api.error(
            Failure.INVALID, f"version must be a deployed version (1 or more), got {version!r}."
        )
    try:
        args = cbor2.dumps(((dict(payload),), {}))
    except cbor2.CBOREncodeError as exc:
        raise api.error(Failure.INVALID, f"the payload cannot be sent as CBOR ({exc}).") from None
    if len(args) > MAX_INLINE_INPUT_BYTES:
        raise api.error(Failure.INVALID, f"the payload is {len(args)} bytes; at most 2 MiB.")

    found = await api.call(
        "FunctionGet",
        api_pb2.FunctionGetRequest(
            app_name=app, object_tag=function, environment_name=environment, app_version=version
        ),
    )
    handle = found.handle_metadata
    _check_handle(handle, where)

    item = api_pb2.FunctionPutInputsItem(
        idx=0,
        input=api_pb2.FunctionInput(
            args=args, data_format=api_pb2.DATA_FORMAT_CBOR, method_name=handle.use_method_name
        ),
    )
    mapped = await api.call(
        "FunctionMap",
        api_pb2.FunctionMapRequest(
            function_id=found.function_id,
            function_call_type=api_pb2.FUNCTION_CALL_TYPE_UNARY,
            pipelined_inputs=[item],
            function_call_invocation_type=api_pb2.FUNCTION_CALL_INVOCATION_TYPE_SYNC,
        ),
    )
    if not mapped.pipelined_inputs:
        put = await api.call(
            "FunctionPutInputs",
            api_pb2.FunctionPutInputsRequest(
                function_id=found.function_id,
                function_call_id=mapped.function_call_id,
                inputs=[item],
            ),
        )
        if not put.inputs:
            raise FunctionCallError(
                "Modal took no input for the call (its input queue may be full); run again later"
            )
    return judge_output(await _await_output(api, mapped.function_call_id))
