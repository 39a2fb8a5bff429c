"""Reasoning gates over HTTP: answer a gate for an access token; admins read the bank.

A gated route refuses a request without a valid token with 401 (429 when the key's rate is the
cause) and a challenge in `details.gate`; `POST /v1/gates/{gate_id}/solve` with the hidden word
returns the token, which then travels in the `X-Sloflow-Gate-Token` header. Needs
`app.state.gatekeeper` (a `Gatekeeper`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from sloflow.api.auth import Admin, Caller
from sloflow.api.gate_tokens import HEADER
from sloflow.api.gatekeeper import Gatekeeper
from sloflow.planners.gates.puzzle import MAX_LETTERS

router = APIRouter(tags=["gates"])

GateId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="a gate id: 32 hex digits, from details.gate.id of a gated answer")]


class GateAnswer(BaseModel):
    """The hidden word: the initials of the clues' answers, in order."""

    model_config = ConfigDict(extra="forbid", strict=True)

    answer: str = Field(min_length=1, max_length=4 * MAX_LETTERS, examples=["lamp"], description="case, spaces and accents do not matter")


class AccessToken(BaseModel):
    """What a right answer earns: send `token` in the `header` header on the gated route group."""

    token: str
    header: str = Field(description=f"the header that carries the token: {HEADER}")
    scope: str = Field(description="the route group it opens: /v1/{scope}/...")
    expires_at: float = Field(description="Unix time it expires")
    uses: int = Field(description="requests it admits")


class BankOut(BaseModel):
    """The bank: gates left by difficulty, and what filling it has cost."""

    available: dict[int, int] = Field(description="gates not yet issued, by difficulty")
    attempts: int = Field(description="fill attempts so far (saved or rejected)")
    saved: int
    generation_tokens: int = Field(description="clue writer and checker output tokens, every attempt")
    label_tokens: int = Field(description="the labelling solver's output tokens, every attempt")
    generation_tokens_per_gate: float | None


def _gatekeeper(request: Request) -> Gatekeeper:
    return request.app.state.gatekeeper


@router.post(
    "/v1/gates/{gate_id}/solve",
    operation_id="solve_gate",
    responses={403: {"description": "wrong answer: the gate is used up and the key's next gates are harder"},
               409: {"description": "the gate was answered already, or expired"}},
)
async def solve_gate(gate_id: GateId, body: GateAnswer, request: Request, caller: Caller) -> AccessToken:
    """Answer a gate issued to this key (once: right or wrong, it is used up) for an access token."""
    token, claims = await asyncio.to_thread(_gatekeeper(request).answer, gate_id, caller.key_id or "", body.answer)
    return AccessToken(token=token, header=HEADER, scope=claims.scope, expires_at=claims.expires_at, uses=claims.uses)


@router.get("/v1/admin/gates", operation_id="gate_bank")
async def gate_bank(request: Request, caller: Admin) -> BankOut:
    """How many gates are left to issue, and the bank's generation cost."""
    bank = _gatekeeper(request).bank
    totals = bank.totals()
    return BankOut(
        available=bank.available(), attempts=totals.attempts, saved=totals.saved, generation_tokens=totals.generation_tokens,
        label_tokens=totals.label_tokens, generation_tokens_per_gate=totals.generation_tokens_per_gate,
    )
