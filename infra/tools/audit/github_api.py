"""A small read-only client of GitHub's REST API (urllib: no new dependency).

Only GET. The token comes from GITHUB_TOKEN (a read-only fine-grained token: Deployments, Actions,
Environments and Secrets read), the base URL from GITHUB_API_URL (set by GitHub Actions on every
runner; tests point it at a fake on 127.0.0.1). The token is sent only to that base URL: a `Link`
to another host ends the paging instead of following it. Errors name the path and GitHub's status,
with the token redacted from anything GitHub said.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from infra.core.errors import AuditError
from infra.core.secrets import SecretStr, redact

API_URL_VARIABLE = "GITHUB_API_URL"
TOKEN_VARIABLE = "GITHUB_TOKEN"
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"  # https://docs.github.com/en/rest/about-the-rest-api/api-versions
PER_PAGE = 100  # the most every list endpoint used here accepts
MAX_PAGES = 20
TIMEOUT_S = 20.0
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubApi:
    def __init__(self, base_url: str, token: SecretStr | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GitHubApi:
        token = environ.get(TOKEN_VARIABLE, "").strip()
        base = environ.get(API_URL_VARIABLE, "").strip() or DEFAULT_API_URL
        return cls(base, SecretStr(token) if token else None)

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        body, _ = self._request(self._url(path, params), path)
        return body

    def paged(
        self, path: str, params: Mapping[str, Any] | None = None, *, key: str | None = None
    ) -> list[Any]:
        """Every item of a list endpoint, following `Link: rel="next"` (up to MAX_PAGES pages).
        `key` names the list inside an object answer (`secrets`)."""
        items: list[Any] = []
        url: str | None = self._url(path, {**(params or {}), "per_page": PER_PAGE})
        for _ in range(MAX_PAGES):
            if url is None:
                break
            body, link = self._request(url, path)
            page = body.get(key, []) if key is not None else body
            if not isinstance(page, list):
                raise AuditError(f"GitHub answered GET {path} with something other than a list")
            items += page
            url = self._next(link)
        return items

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        query = urllib.parse.urlencode(dict(params or {}))
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def _next(self, link: str) -> str | None:
        match = _NEXT.search(link or "")
        if match is None or not match.group(1).startswith(self.base_url + "/"):
            return None  # never send the token anywhere but the API it was meant for
        return match.group(1)

    def _request(self, url: str, path: str) -> tuple[Any, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                raw, link = response.read(), response.headers.get("Link", "")
        except urllib.error.HTTPError as error:
            said = self._message(error.read())
            raise AuditError(
                f"GitHub answered GET {path} with HTTP {error.code}{said}. " + _hint(error.code)
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", None) or type(error).__name__
            raise AuditError(
                f"could not reach GitHub at {self.base_url} for GET {path} ({reason}); check "
                f"{API_URL_VARIABLE} and the network"
            ) from None
        try:
            return json.loads(raw or b"null"), link
        except ValueError:
            raise AuditError(
                f"GitHub answered GET {path} with something that is not JSON"
            ) from None

    def _message(self, raw: bytes) -> str:
        try:
            message = str(json.loads(raw).get("message", ""))
        except (ValueError, AttributeError):
            message = ""
        secrets = [self._token.reveal()] if self._token else []
        return f" ({redact(message, secrets)[:200]})" if message else ""


def _hint(status: int) -> str:
    if status == 401:
        return f"Check that {TOKEN_VARIABLE} holds a current token."
    if status in (403, 404):
        return (
            f"The token in {TOKEN_VARIABLE} may lack read access: a fine-grained token needs "
            "Actions, Deployments, Environments and Secrets (read) on this repository."
        )
    return "Run again later; GitHub may be degraded (https://www.githubstatus.com)."


def run_id_of(url: str) -> int | None:
    """The workflow run behind a deployment status, from its log URL
    (`https://github.com/OWNER/REPO/actions/runs/RUN_ID/job/JOB_ID`)."""
    match = re.search(r"/actions/runs/(\d+)", url or "")
    return int(match.group(1)) if match else None
