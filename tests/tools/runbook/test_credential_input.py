"""How a credential is handed to `rotate` and `incident --verify`: the shapes other tools print,
piped in; what a mistake says (never the value); how an id is shown."""

from __future__ import annotations

import json
import secrets

import pytest

from infra.core.errors import RotationError
from infra.core.secrets import mask_id as mask
from infra.tools.runbook.credential_input import parse_credential_text

# Made at runtime, like tests/stacks.py does, so no credential-shaped literal is ever committed.
TOKEN_ID = "ak-" + secrets.token_hex(11)
TOKEN_SECRET = "as-" + secrets.token_hex(11)
KEY_ID = "AKIA" + secrets.token_hex(8).upper()
KEY_SECRET = secrets.token_urlsafe(30)


@pytest.mark.parametrize(
    "text",
    [
        # `modal workspace service-users create NAME --json`
        json.dumps({"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET, "expires_at": None}),
        # `modal token info`-style exports, as a shell script would hold them
        f"export MODAL_TOKEN_ID={TOKEN_ID}\nexport MODAL_TOKEN_SECRET='{TOKEN_SECRET}'\n",
        f"{TOKEN_ID}\n{TOKEN_SECRET}\n",
    ],
)
def test_modal_token_shapes(text: str) -> None:
    assert parse_credential_text(text) == (TOKEN_ID, TOKEN_SECRET)


def test_aws_create_access_key_output() -> None:
    printed = {"AccessKey": {"UserName": "u", "AccessKeyId": KEY_ID, "SecretAccessKey": KEY_SECRET}}
    assert parse_credential_text(json.dumps(printed)) == (KEY_ID, KEY_SECRET)


def test_an_id_alone_is_accepted_for_verify() -> None:
    assert parse_credential_text(f"{KEY_ID}\n") == (KEY_ID, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json " + TOKEN_SECRET,
        json.dumps({"secret": TOKEN_SECRET}),
        f"a\nb\n{TOKEN_SECRET}\n",
        f"SOMETHING={TOKEN_SECRET}\n",
    ],
)
def test_mistakes_are_explained_without_quoting_the_input(text: str) -> None:
    with pytest.raises(RotationError) as caught:
        parse_credential_text(text)
    assert TOKEN_SECRET not in str(caught.value)


def test_ids_are_shown_by_kind_and_last_four_only() -> None:
    assert mask(TOKEN_ID) == f"ak-…{TOKEN_ID[-4:]}"
    assert mask(KEY_ID) == f"AKIA…{KEY_ID[-4:]}"
    assert mask("short") == "…"
