"""A fake of the GitHub REST API endpoints the audit reads, on 127.0.0.1 (an http.server thread).

It serves, for one repository, what a test puts in `FakeGitHubState`: deployments (filtered by
`environment`, newest first), their statuses, a workflow run's review history, and environment and
repository secrets' metadata (names and dates: GitHub never returns a value). It behaves as GitHub
does where the client depends on it:

- `Authorization: Bearer TOKEN` must carry the configured token, else 401 `Bad credentials`;
- list endpoints page with `per_page` (at most 100) and `page`, and say where the next page is in a
  `Link: <...>; rel="next"` header;
- a query parameter an endpoint does not document is refused with 422, so a client cannot
  silently rely on a filter GitHub would ignore;
- anything but GET is refused with 405 (the audit only reads), and an unknown path is a 404.

Parameters per endpoint, from GitHub's REST reference (API version 2022-11-28):
https://docs.github.com/en/rest/deployments/deployments#list-deployments (sha, ref, task,
environment, per_page, page), .../deployments/statuses#list-deployment-statuses (per_page, page),
.../actions/workflow-runs#get-the-review-history-for-a-workflow-run (none),
.../actions/secrets#list-environment-secrets and #list-repository-secrets (per_page, page).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

OWNER, REPOSITORY = "acme-ml", "rentagpu"
_LIST_PARAMS = frozenset({"per_page", "page"})
_DEPLOYMENT_PARAMS = _LIST_PARAMS | {"sha", "ref", "task", "environment"}


@dataclass
class FakeGitHubState:
    owner: str = OWNER
    repository: str = REPOSITORY
    token: str = field(default_factory=lambda: "github_pat_" + secrets.token_hex(20))
    deployments: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    approvals: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    environment_secrets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    repository_secrets: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)
    _next_id: int = 100

    def add_deployment(
        self,
        environment: str,
        ref: str,
        created_at: str,
        *,
        creator: str = "github-actions[bot]",
        run_id: int | None = None,
        approved_by: tuple[str, ...] = (),
        state: str = "success",
    ) -> int:
        """A deployment as Actions records one: a status whose log URL names the run, and the
        run's review history (one approval per reviewer, for this environment)."""
        self._next_id += 1
        number = self._next_id
        self.deployments.insert(
            0,
            {
                "id": number,
                "sha": secrets.token_hex(20),
                "ref": ref,
                "task": "deploy",
                "environment": environment,
                "creator": {"login": creator},
                "created_at": created_at,
                "updated_at": created_at,
            },
        )
        self.deployments.sort(key=lambda d: d["created_at"], reverse=True)
        log_url = (
            f"https://github.com/{self.owner}/{self.repository}/actions/runs/{run_id}/job/1"
            if run_id is not None
            else ""
        )
        self.statuses[number] = [
            {"id": number * 10, "state": state, "log_url": log_url, "target_url": log_url}
        ]
        if run_id is not None:
            self.approvals.setdefault(run_id, []).extend(
                {
                    "state": "approved",
                    "comment": "",
                    "user": {"login": login},
                    "environments": [{"id": 1, "name": environment}],
                }
                for login in approved_by
            )
        return number

    def add_environment_secret(self, environment: str, name: str, updated_at: str) -> None:
        self.environment_secrets.setdefault(environment, []).append(
            {"name": name, "created_at": updated_at, "updated_at": updated_at}
        )

    def add_repository_secret(self, name: str, updated_at: str) -> None:
        self.repository_secrets.append(
            {"name": name, "created_at": updated_at, "updated_at": updated_at}
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # quiet: the tests read `requests`

    def _send(self, status: int, body: Any, link: str = "") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._refuse()

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _refuse(self) -> None:
        self.server.state.requests.append((self.command, self.path))
        self._send(405, {"message": "the fake GitHub API is read-only"})

    def do_GET(self) -> None:  # noqa: N802
        state = self.server.state
        state.requests.append(("GET", self.path))
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            # GitHub echoes nothing of the token; a careless client might. This fake does, so a
            # test shows the client never passes it on.
            said = self.headers.get("Authorization", "")
            self._send(401, {"message": f"Bad credentials: {said}"})
            return
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        routed = self._route(parsed.path, query, state)
        if routed is None:
            self._send(404, {"message": "Not Found"})
            return
        allowed, items, key = routed
        unknown = set(query) - allowed
        if unknown:
            self._send(422, {"message": f"unknown parameters: {sorted(unknown)}"})
            return
        if "per_page" not in allowed:
            self._send(200, items)
            return
        self._page(parsed.path, query, items, key)

    def _page(self, path: str, query: dict[str, str], items: list[Any], key: str | None) -> None:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        link = ""
        if page * per_page < len(items):
            following = urllib.parse.urlencode({**query, "page": page + 1})
            link = f'<{self.server.url}{path}?{following}>; rel="next"'
        # Secret lists are an object `{total_count, secrets}`, paged the same way.
        body = {"total_count": len(items), key: chunk} if key else chunk
        self._send(200, body, link)

    def _route(self, path: str, query: dict[str, str], state: FakeGitHubState):
        """(allowed parameters, items, key of the list in an object answer) or None: 404."""
        repo = re.escape(f"/repos/{state.owner}/{state.repository}")
        if re.fullmatch(rf"{repo}/deployments", path):
            filters = [k for k in ("environment", "ref", "sha", "task") if k in query]
            found = [d for d in state.deployments if all(str(d[k]) == query[k] for k in filters)]
            return _DEPLOYMENT_PARAMS, found, None
        if match := re.fullmatch(rf"{repo}/deployments/(\d+)/statuses", path):
            return _LIST_PARAMS, state.statuses.get(int(match.group(1)), []), None
        if match := re.fullmatch(rf"{repo}/actions/runs/(\d+)/approvals", path):
            return frozenset(), state.approvals.get(int(match.group(1)), []), None
        if match := re.fullmatch(rf"{repo}/environments/([^/]+)/secrets", path):
            found = state.environment_secrets.get(urllib.parse.unquote(match.group(1)))
            return None if found is None else (_LIST_PARAMS, found, "secrets")
        if re.fullmatch(rf"{repo}/actions/secrets", path):
            return _LIST_PARAMS, state.repository_secrets, "secrets"
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeGitHubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@dataclass
class FakeGitHub:
    state: FakeGitHubState
    url: str

    def environ(self) -> dict[str, str]:
        return {"GITHUB_API_URL": self.url, "GITHUB_TOKEN": self.state.token}

    def methods(self) -> set[str]:
        return {method for method, _ in self.state.requests}


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A fake GitHub API for repository acme-ml/rentagpu (the test stacks' repository)."""
    server = _Server(FakeGitHubState())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeGitHub(server.state, server.url)
    finally:
        server.shutdown()
        server.server_close()
