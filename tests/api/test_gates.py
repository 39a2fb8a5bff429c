"""Reasoning gates in the API: the challenge, solving, access tokens (signature, key, scope, uses,
expiry), single-use gates, wrong answers, exempt keys, adaptive thresholds, and where the answer
may never appear. The bank is a real SQLite file filled with gates whose answers the test knows."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from sloflow.api.app import create_app
from sloflow.api.gate_tokens import HEADER, TokenSigner
from sloflow.api.gatekeeper import Gatekeeper
from sloflow.gating import GatePolicy
from sloflow.llm.client import DirectClient
from sloflow.llm.embedded import EmbeddedBackend
from sloflow.tenancy import KeyStore
from sloflow.workflows.builtin.gates.bank import BANK_FILE, Clue, GateBank, server_secret

WORDS = ["lamp", "silk", "tide", "wolf", "yarn", "zone", "mint", "nest", "oven", "pier", "rake", "kite"]


class Clock:
    """Time the test moves by hand (the bank and the gatekeeper read it)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gated:
    app: FastAPI
    client: httpx.AsyncClient
    keys: KeyStore
    bank: GateBank
    keeper: Gatekeeper
    clock: Clock
    load: list[float]
    home: Path
    answers: dict[str, str]  # gate id -> answer
    headers: dict[str, dict[str, str]]  # a, b (members), admin, trusted (exempt)


def fill_bank(bank: GateBank, words: list[str], difficulty: int) -> dict[str, str]:
    """Gates of `words` at `difficulty`; their ids -> answers (the test knows them: it made them)."""
    return {
        bank.add([Clue("music", f"clue for letter {i + 1}") for i in range(len(word))], word, difficulty, 50 * difficulty): word
        for word in words
    }


@pytest.fixture
async def gated(tmp_path: Path, small_llm: EmbeddedBackend) -> AsyncIterator[Gated]:
    clock = Clock()
    keys = KeyStore(tmp_path / "tenants.sqlite")
    secret = server_secret(tmp_path)
    bank = GateBank(tmp_path / BANK_FILE, secret, clock=clock)
    answers = {gate_id: word for level in (1, 2, 3, 4) for gate_id, word in fill_bank(bank, WORDS, level).items()}
    load = [0.0]

    async def gauge() -> float:
        return load[0]

    policies = {
        "models": GatePolicy(mode="always", token_uses=2, token_ttl_s=30, gate_ttl_s=60),
        "tenants": GatePolicy(mode="adaptive", rate_per_s=0.5, window_s=10, load_s=5.0, gate_ttl_s=60),
    }
    keeper = Gatekeeper(bank, TokenSigner(secret), policies, load=gauge, clock=clock)
    app = create_app(DirectClient(small_llm), [small_llm.name], keys=keys, gatekeeper=keeper)
    headers = {}
    for name, tenant, role, exempt in (("a", "team-a", "member", False), ("b", "team-b", "member", False),
                                       ("admin", "ops", "admin", False), ("trusted", "team-a", "member", True)):
        _, key = keys.create(tenant, role, gate_exempt=exempt)  # type: ignore[arg-type]
        headers[name] = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Gated(app, client, keys, bank, keeper, clock, load, tmp_path, answers, headers)
    bank.close()
    keys.close()


async def challenge(g: Gated, path: str, who: str = "a", status: int = 401) -> dict:
    r = await g.client.get(path, headers=g.headers[who])
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == "gate_required" and body["details"]["token_header"] == HEADER
    return body["details"]["gate"]


async def solve(g: Gated, gate: dict, who: str = "a") -> httpx.Response:
    return await g.client.post(gate["solve"], json={"answer": g.answers[gate["id"]]}, headers=g.headers[who])


async def test_always_gated_route_gives_a_challenge_then_a_solved_gate_admits(gated: Gated) -> None:
    g = gated
    assert (await g.client.get("/v1/health")).status_code == 200  # never gated
    gate = await challenge(g, "/v1/models")
    assert set(gate) >= {"id", "clues", "letters", "difficulty", "expires_at", "solve"} and gate["difficulty"] == 1
    assert len(gate["clues"]) == gate["letters"] and all(set(c) == {"domain", "clue"} for c in gate["clues"])
    r = await solve(g, gate)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["scope"] == "models" and token["uses"] == 2 and token["header"] == HEADER
    with_token = {**g.headers["a"], HEADER: token["token"]}
    for _ in range(2):
        assert (await g.client.get("/v1/models", headers=with_token)).status_code == 200
    again = await g.client.get("/v1/models", headers=with_token)  # the token's two uses are spent
    assert again.status_code == 401 and "spent" in again.json()["details"]["token_refused"]


async def test_a_gate_is_single_use_and_refused_after_it_expires(gated: Gated) -> None:
    g = gated
    gate = await challenge(g, "/v1/models")
    assert (await solve(g, gate)).status_code == 200
    reused = await solve(g, gate)
    assert reused.status_code == 409 and "answered already" in reused.json()["message"]
    late = await challenge(g, "/v1/models")
    assert late["id"] != gate["id"]
    g.clock.now += 61
    expired = await solve(g, late)
    assert expired.status_code == 409 and "expired" in expired.json()["message"]


async def test_asking_again_returns_the_same_open_gate_rather_than_draining_the_bank(gated: Gated) -> None:
    g = gated
    before = sum(g.bank.available().values())
    first = await challenge(g, "/v1/models")
    second = await challenge(g, "/v1/models")
    assert first["id"] == second["id"] and sum(g.bank.available().values()) == before - 1


async def test_a_wrong_answer_uses_the_gate_up_and_raises_the_keys_difficulty(gated: Gated) -> None:
    g = gated
    gate = await challenge(g, "/v1/models")
    wrong = await g.client.post(gate["solve"], json={"answer": "notit"}, headers=g.headers["a"])
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_answer"
    assert (await solve(g, gate)).status_code == 409  # used up
    harder = await challenge(g, "/v1/models")
    assert harder["difficulty"] == gate["difficulty"] + 1
    other = await challenge(g, "/v1/models", who="b")  # another key's difficulty is its own
    assert other["difficulty"] == 1


async def test_answers_are_normalised(gated: Gated) -> None:
    g = gated
    gate = await challenge(g, "/v1/models")
    word = g.answers[gate["id"]]
    spaced = " ".join(word.upper()) + " !"
    assert (await g.client.post(gate["solve"], json={"answer": spaced}, headers=g.headers["a"])).status_code == 200


async def test_tokens_are_bound_to_their_key_scope_and_signature_and_expire(gated: Gated) -> None:
    g = gated
    gate = await challenge(g, "/v1/models")
    assert (await g.client.post(gate["solve"], json={"answer": "x"}, headers=g.headers["b"])).status_code == 404  # not b's gate
    token = (await solve(g, gate)).json()["token"]
    as_b = await g.client.get("/v1/models", headers={**g.headers["b"], HEADER: token})
    assert as_b.status_code == 401 and "another API key" in as_b.json()["details"]["token_refused"]
    body, sig = token.split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + sig
    r = await g.client.get("/v1/models", headers={**g.headers["a"], HEADER: forged})
    assert r.status_code == 401 and "signature" in r.json()["details"]["token_refused"]
    g.clock.now += 15  # the tenants group is adaptive and quiet: no gate; so gate it by load to test scope
    g.load[0] = 10.0
    other_scope = await g.client.get("/v1/tenants/me", headers={**g.headers["a"], HEADER: token})
    assert other_scope.status_code == 401 and "not /v1/tenants" in other_scope.json()["details"]["token_refused"]
    g.clock.now += 31
    late = await g.client.get("/v1/models", headers={**g.headers["a"], HEADER: token})
    assert late.status_code == 401 and "expired" in late.json()["details"]["token_refused"]


async def test_exempt_keys_never_see_a_gate_and_admins_set_exemption(gated: Gated) -> None:
    g = gated
    g.load[0] = 1000.0
    for _ in range(10):
        assert (await g.client.get("/v1/models", headers=g.headers["trusted"])).status_code == 200
        assert (await g.client.get("/v1/tenants/me", headers=g.headers["trusted"])).status_code == 200
    key_id = g.headers["b"]["Authorization"].split("-")[1]
    assert (await g.client.patch(f"/v1/admin/keys/{key_id}", json={"gate_exempt": True}, headers=g.headers["b"])).status_code == 403
    r = await g.client.patch(f"/v1/admin/keys/{key_id}", json={"gate_exempt": True}, headers=g.headers["admin"])
    assert r.status_code == 200 and r.json()["gate_exempt"] is True
    assert (await g.client.get("/v1/models", headers=g.headers["b"])).status_code == 200
    assert (await g.client.patch(f"/v1/admin/keys/{key_id}", json={"gate_exempt": False}, headers=g.headers["admin"])).json()["gate_exempt"] is False
    await challenge(g, "/v1/models", who="b")


async def test_adaptive_gate_appears_past_the_rate_with_429_and_rises_with_it(gated: Gated) -> None:
    g = gated  # tenants: 0.5 requests/s over 10 s, i.e. 5 free requests in any 10 s
    for _ in range(5):
        assert (await g.client.get("/v1/tenants/me", headers=g.headers["a"])).status_code == 200
    gate = await challenge(g, "/v1/tenants/me", status=429)
    assert gate["difficulty"] == 1 and gate["scope"] == "tenants"
    token = (await solve(g, gate)).json()["token"]
    assert (await g.client.get("/v1/tenants/me", headers={**g.headers["a"], HEADER: token})).status_code == 200
    assert (await g.client.get("/v1/tenants/me", headers=g.headers["b"])).status_code == 200  # rates are per key
    g.keeper.policies["tenants"] = GatePolicy(mode="adaptive", rate_per_s=0.15, window_s=10, load_s=5.0)  # 6 admitted = 4x
    harder = await challenge(g, "/v1/tenants/me", status=429)
    assert harder["difficulty"] == 3  # two doublings past the threshold
    g.clock.now += 11  # the window has passed: free again
    assert (await g.client.get("/v1/tenants/me", headers=g.headers["a"])).status_code == 200


async def test_adaptive_gate_appears_with_load_as_401_and_rises_with_it(gated: Gated) -> None:
    g = gated  # tenants: load threshold 5 s of queued deadline work per worker
    g.load[0] = 4.9
    assert (await g.client.get("/v1/tenants/me", headers=g.headers["a"])).status_code == 200
    g.load[0] = 5.0
    assert (await challenge(g, "/v1/tenants/me"))["difficulty"] == 1
    g.load[0] = 20.0
    assert (await challenge(g, "/v1/tenants/me", who="b"))["difficulty"] == 3
    g.load[0] = 0.0
    assert (await g.client.get("/v1/tenants/me", headers=g.headers["b"])).status_code == 200


async def test_the_answer_never_appears_in_plain_text(gated: Gated, caplog: pytest.LogCaptureFixture) -> None:
    g = gated
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for who in ("a", "b"):
        r = await g.client.get("/v1/models", headers=g.headers[who])
        seen.append(r.text)
        gate = r.json()["details"]["gate"]
        seen.append((await g.client.post(gate["solve"], json={"answer": "wrongword"}, headers=g.headers[who])).text)
        gate = await challenge(g, "/v1/models", who=who)
        seen.append((await solve(g, gate, who=who)).text)
    seen.append((await g.client.get("/v1/admin/gates", headers=g.headers["admin"])).text)
    g.bank._db.execute("PRAGMA wal_checkpoint(FULL)")
    stored = b"".join(p.read_bytes() for p in g.home.glob(BANK_FILE + "*")).lower()
    logs = caplog.text.lower()
    for word in WORDS:
        assert word.encode() not in stored, word
        assert word not in logs, word
        assert not any(f'"{word}"' in text.lower() for text in seen), word


async def test_bad_input_to_gate_routes_gets_a_4xx_that_says_what_to_fix(gated: Gated) -> None:
    g = gated
    gate = await challenge(g, "/v1/models")
    h = g.headers["a"]
    cases = [
        ("/v1/gates/not-an-id/solve", {"answer": "x"}, 422),
        (gate["solve"], {}, 422),
        (gate["solve"], {"answer": ""}, 422),
        (gate["solve"], {"answer": 5}, 422),
        (gate["solve"], {"answer": "x" * 500}, 422),
        (gate["solve"], {"answer": "x", "extra": 1}, 422),
        ("/v1/gates/" + "0" * 32 + "/solve", {"answer": "x"}, 404),
    ]
    for path, body, status in cases:
        r = await g.client.post(path, json=body, headers=h)
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["message"]
    assert (await g.client.post(gate["solve"], content=b"{", headers={**h, "content-type": "application/json"})).status_code == 400
    assert (await g.client.post(gate["solve"], json={"answer": "x"})).status_code == 401
    assert (await g.client.get("/v1/admin/gates", headers=h)).status_code == 403
    assert (await g.client.patch("/v1/admin/keys/" + "0" * 12, json={"gate_exempt": True}, headers=g.headers["admin"])).status_code == 404
    assert (await g.client.patch("/v1/admin/keys/" + "0" * 12, json={"gate_exempt": "yes"}, headers=g.headers["admin"])).status_code == 422
    assert (await solve(g, gate)).status_code == 200  # none of that used the gate up


async def test_admins_read_the_bank(gated: Gated) -> None:
    g = gated
    r = await g.client.get("/v1/admin/gates", headers=g.headers["admin"])
    assert r.status_code == 200
    assert r.json()["available"] == {str(level): len(WORDS) for level in (1, 2, 3, 4)}


async def test_with_no_gate_left_the_client_is_told_to_back_off(gated: Gated) -> None:
    g = gated
    for n in range(sum(g.bank.available().values())):
        g.bank.issue(f"other{n}", "models", 1, ttl_s=60)
    for who in ("a", "b"):
        r = await g.client.get("/v1/models", headers=g.headers[who])
        assert r.status_code == 429 and r.json()["code"] == "gate_bank_empty" and int(r.headers["Retry-After"]) >= 1
    assert (await g.client.get("/v1/models", headers=g.headers["trusted"])).status_code == 200
    fill_bank(g.bank, ["lamp"], 1)
    assert (await g.client.get("/v1/models", headers=g.headers["a"])).json()["code"] == "gate_bank_empty"  # believed empty a moment
    g.clock.now += 1.5
    assert (await g.client.get("/v1/models", headers=g.headers["a"])).json()["code"] == "gate_required"
