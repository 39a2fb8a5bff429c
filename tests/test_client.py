"""The gate-solving client against a gated server on loopback, its solver on an OpenAI-compatible
endpoint (the server's own chat route, the real small model): properties only."""

from __future__ import annotations

import pytest

from sloflow.client import GatedClient, GateSolver
from tests.api.test_gates import Gated, gated  # noqa: F401  (the gated app fixture)
from tests.conftest import serving

pytestmark = pytest.mark.model


async def test_the_client_meets_a_gate_asks_its_model_and_answers_it(gated: Gated) -> None:  # noqa: F811
    g = gated
    async with serving(g.app) as port:
        base = f"http://127.0.0.1:{port}"
        trusted = g.headers["trusted"]["Authorization"].removeprefix("Bearer ")
        agent = g.headers["a"]["Authorization"].removeprefix("Bearer ")
        solver = GateSolver(f"{base}/v1", api_key=trusted, max_tokens=48)
        async with GatedClient(base, agent, solver, max_gates=1) as client:
            r = await client.request("GET", "/v1/models")
            tally = client.tally
        await solver.aclose()
    assert tally.seen == 1 and tally.attempts[0].completion_tokens > 0 and tally.attempts[0].seconds > 0
    assert (r.status_code == 200) == (tally.solved == 1)  # admitted exactly when the model found the word
    if r.status_code != 200:
        assert r.json()["code"] == "gate_required" and r.json()["details"]["gate"]["difficulty"] == 2  # a wrong answer: harder
    assert g.bank.available() != {}  # the rest of the bank is untouched
