"""Schemathesis, as a user runs it (`st run .../openapi.json`), against the whole app on loopback:
every route, stateful phase included, with a valid key, with none and with a wrong one.

No 5xx but a 504 deadline miss, no stack trace in any body, responses as documented, health afterwards. The server counts
what it was sent. Bounded: few examples per operation, and the tenant's token quota bounds the LLM
work (a call reserves its max_tokens, so a fuzzed max_tokens never means minutes of decoding).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.api.conftest import Deployment
from tests.conftest import free_port

pytestmark = pytest.mark.fuzz

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
])


class Tally:
    """Counts requests and statuses, and keeps any body that looks like a stack trace.

    A 504 whose body says `deadline_exceeded` is a deadline missed under load, not a server error
    (see schemathesis.toml); any other 5xx is one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.statuses: Counter[int] = Counter()
        self.traces: list[str] = []
        self.server_errors: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status = 0

        async def counting(message: Message) -> None:
            nonlocal status
            route = f"{scope['method']} {scope['path']}"
            if message["type"] == "http.response.start":
                status = message["status"]
                self.statuses[status] += 1
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if b"Traceback" in body:
                    self.traces.append(route)
                if status >= 500 and not (status == 504 and b'"deadline_exceeded"' in body):
                    self.server_errors.append(f"{status} {route}: {body[:200]!r}")
            await send(message)

        await self.app(scope, receive, counting)


def _st() -> str:
    return shutil.which("st", path=str(Path(sys.executable).parent)) or "st"


async def _schemathesis(url: str, workdir: Path, *options: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        _st(), "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run", f"{url}/openapi.json", *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"}, cwd=workdir,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def test_schemathesis_finds_no_server_error_and_no_undocumented_response(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    d.gate.set()  # fuzzed runs that ask to wait do not wait
    d.keys.set_quotas("team-a", tokens_per_min=600, requests_per_min=100_000)
    d.keys.set_quotas("team-b", requests_per_min=100_000)
    tally = Tally(d.app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(tally, host="127.0.0.1", port=port, log_level="error"))
    serving = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        common = ["--checks", CHECKS, "--generation-database", "none", "--seed", "18", "--request-timeout", "60", "--no-shrink"]
        key = d.headers["a"]["Authorization"]
        runs = [
            ("member key", [*common, "--max-examples", "6", "-H", f"Authorization: {key}"]),
            ("no key", [*common, "--max-examples", "2", "--phases", "examples,coverage,fuzzing", "--exclude-checks", "ignored_auth"]),
            ("wrong key", [*common, "--max-examples", "2", "--phases", "examples,fuzzing", "--exclude-checks", "ignored_auth",
                           "-H", "Authorization: Bearer sf-000000000000-" + "x" * 43]),
        ]
        failures = []
        for name, options in runs:
            code, out = await _schemathesis(url, tmp_path, *options)
            report = tmp_path / f"st-{name.replace(' ', '-')}.txt"
            report.write_text(out)
            if code != 0:
                summary = "\n".join(line[:300] for line in out.splitlines() if not line.startswith("    curl"))
                failures.append(f"--- {name}: exit {code} (whole output: {report})\n{summary[-8000:]}")
        async with httpx.AsyncClient(base_url=url) as c:
            assert (await c.get("/v1/health")).status_code == 200
    finally:
        server.should_exit = True
        await serving
    sent = sum(tally.statuses.values())
    print(f"fuzz: {sent} requests sent, {len(tally.server_errors)} server errors; statuses {dict(sorted(tally.statuses.items()))}")
    assert not failures, "\n".join(failures)
    assert not tally.server_errors and not tally.traces, tally.server_errors + tally.traces
    assert sent > 500
