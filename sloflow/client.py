"""A client of a sloflow server that solves the reasoning gates gated routes ask for.

    solver = GateSolver("http://127.0.0.1:8080/v1", model="qwen")        # any OpenAI-compatible endpoint
    async with GatedClient("http://127.0.0.1:8000", key, solver) as sf:
        r = await sf.request("POST", "/v1/chat/completions", json={...})  # a gate on the way is solved

A `401`/`429` with code `gate_required` carries a gate; the client asks its model for the hidden
word as the server's own labelling solver does (the same prompt, and as many replies voted over as
the gate's difficulty says), posts it, and repeats the request with the access token, which it
keeps per route group until its uses are spent or it expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from sloflow.planners.gates.prompts import solve_by_vote

GATE_REQUIRED = "gate_required"


@dataclass(frozen=True)
class Attempt:
    """One solve: the answer given, the model's output tokens and the seconds it took."""

    answer: str
    completion_tokens: int
    seconds: float


class GateSolver:
    """Solves gates with a chat model behind any OpenAI-compatible endpoint (`base_url` ends in /v1; `model` None: its default)."""

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None, max_tokens: int = 768, timeout_s: float = 300.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.model = model
        self.max_tokens = max_tokens

    async def solve(self, gate: dict[str, Any]) -> Attempt:
        """The model's answer to a gate as the server sends it (`details.gate`): a vote over as many
        replies as its difficulty asks for (the first greedy, the others sampled)."""
        start = time.perf_counter()
        clues = [(c["domain"], c["clue"]) for c in gate["clues"]]
        answer, tokens = await solve_by_vote(self._reply, clues, int(gate.get("difficulty", 1)))
        return Attempt(answer, tokens, time.perf_counter() - start)

    async def _reply(self, messages: list[Any], settings: dict[str, Any]) -> tuple[str, int]:
        body: dict[str, Any] = {"messages": messages, "max_tokens": self.max_tokens, **settings}
        if self.model is not None:
            body["model"] = self.model
        r = await self._http.post("/chat/completions", json=body)
        r.raise_for_status()
        out = r.json()
        return out["choices"][0]["message"]["content"] or "", int(out.get("usage", {}).get("completion_tokens", 0))

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass
class GateTally:
    """What gates cost this client so far."""

    seen: int = 0
    solved: int = 0
    tokens: int = 0
    seconds: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)


class GatedClient:
    """An HTTP client of sloflow with an API key that solves the gates it meets (at most `max_gates` per request)."""

    def __init__(self, base_url: str, api_key: str, solver: GateSolver, *, max_gates: int = 3, timeout_s: float = 300.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s)
        self.solver = solver
        self.max_gates = max_gates
        self.tally = GateTally()
        self._tokens: dict[str, tuple[str, str]] = {}  # route group -> (header, token)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send the request; a gate on the way is solved and the request repeated with the token."""
        group = path.strip("/").split("/")[1] if path.startswith("/v1/") else ""
        headers = dict(kwargs.pop("headers", None) or {})
        solved = 0
        while True:
            if group in self._tokens:
                name, token = self._tokens[group]
                headers[name] = token
            r = await self._http.request(method, path, headers=headers, **kwargs)
            if r.status_code not in (401, 429) or r.json().get("code") != GATE_REQUIRED or solved == self.max_gates:
                return r
            self._tokens.pop(group, None)
            await self._solve(r.json()["details"]["gate"])
            solved += 1

    async def _solve(self, gate: dict[str, Any]) -> None:
        attempt = await self.solver.solve(gate)
        self.tally.seen += 1
        self.tally.tokens += attempt.completion_tokens
        self.tally.seconds += attempt.seconds
        self.tally.attempts.append(attempt)
        r = await self._http.post(gate["solve"], json={"answer": attempt.answer or "?"})
        if r.status_code == 200:
            self.tally.solved += 1
            token = r.json()
            self._tokens[token["scope"]] = (token["header"], token["token"])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> GatedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
