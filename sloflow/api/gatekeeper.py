"""The gatekeeper: asks keys for a solved reasoning gate on the route groups whose policy says so.

`authenticated` (api/auth.py) calls `Gatekeeper.admit` after the key is known. A request of a
gated group passes with a valid access token (header `X-Sloflow-Gate-Token`) that has uses left,
or when the group's policy (`sloflow.gating.demand`) asks for no gate at this key's rate and this
load; otherwise it is refused with a challenge from the bank. Exempt keys never see a gate.
Request rates, wrong answers and token uses are counted in this process (one API replica).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sloflow.api.gate_tokens import HEADER, BadToken, TokenClaims, TokenSigner
from sloflow.errors import GateBankEmpty, GateRequired, WrongAnswer
from sloflow.gating import UNGATED_GROUPS, GatePolicy, demand, route_group
from sloflow.tenancy import Principal
from sloflow.workflows.builtin.gates.bank import Challenge, GateBank

LoadGauge = Callable[[], Awaitable[float]]  # seconds of queued deadline work per worker
WRONG_MEMORY_S = 3600.0  # wrong answers older than this are forgotten whatever the window
EMPTY_MEMORY_S = 1.0  # an empty bank is believed empty this long before it is asked again


class _Times:
    """Event times of the last `horizon` seconds."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def count(self, now: float, horizon: float) -> int:
        return sum(1 for t in self.times if t > now - horizon)

    def add(self, now: float, keep: float) -> None:
        while self.times and self.times[0] <= now - keep:
            self.times.popleft()
        self.times.append(now)


class Gatekeeper:
    """Applies the gate policies of route groups; issues challenges from `bank` and tokens by `signer`."""

    def __init__(
        self,
        bank: GateBank,
        signer: TokenSigner,
        policies: Mapping[str, GatePolicy],
        *,
        load: LoadGauge | None = None,
        clock: Callable[[], float] = time.time,
        on_issue: Callable[[], None] | None = None,
    ) -> None:
        ungated = sorted(set(policies) & UNGATED_GROUPS)
        if ungated:
            raise ValueError(f"route groups {ungated} cannot be gated: a gate must be solvable and health readable without one")
        self.bank = bank
        self.signer = signer
        self.policies = dict(policies)
        self.load = load
        self._clock = clock
        self._on_issue = on_issue  # e.g. wake the bank filler
        self._admitted: dict[tuple[str, str], _Times] = {}
        self._wrong: dict[str, _Times] = {}
        self._spent: dict[str, tuple[int, float]] = {}  # token id -> (uses spent, expiry)
        self._open: dict[tuple[str, str], Challenge] = {}  # (key, group) -> its unanswered gate: a refusal costs no query
        self._empty: tuple[float, GateBankEmpty] | None = None  # (until when, the refusal) once the bank ran dry
        self._lock = threading.Lock()

    def policy(self, group: str) -> GatePolicy | None:
        found = self.policies.get(group)
        return found if found is not None and found.mode != "off" else None

    async def admit(self, path: str, token: str | None, principal: Principal) -> None:
        """Let the request through (and count it), or raise `GateRequired` with a challenge."""
        group = route_group(path)
        policy = self.policy(group)
        if policy is None or principal.gate_exempt or principal.key_id is None:
            return
        key_id = principal.key_id
        now = self._clock()
        refused = None
        if token:
            try:
                self._spend(self.signer.verify(token, key_id, group, now), now)
                self._count(key_id, group, policy, now)
                return
            except BadToken as exc:
                refused = str(exc)
        load = await self.load() if self.load is not None else 0.0
        with self._lock:
            rate = self._admitted.get((key_id, group), _Times()).count(now, policy.window_s) / policy.window_s
            wrong = self._wrong.get(key_id, _Times()).count(now, policy.window_s)
        needed = demand(policy, rate, load, wrong)
        if needed is None:
            self._count(key_id, group, policy, now)
            return
        challenge = self._challenge(key_id, group, needed.difficulty, policy, now)
        raise GateRequired(_message(group, needed.reason, refused), rate_driven=needed.reason == "rate", details={
            "gate": challenge.to_dict(), "reason": needed.reason, "rate_per_s": round(rate, 3), "load_s": round(load, 3),
            "token_header": HEADER, **({"token_refused": refused} if refused else {}),
        })

    def answer(self, gate_id: str, key_id: str, answer: str) -> tuple[str, TokenClaims]:
        """Use the gate up; a right answer earns an access token for the gate's scope, per its group's policy.

        A wrong one raises `WrongAnswer` and counts against the key: its next gates are harder.
        """
        with self._lock:
            self._open = {k: c for k, c in self._open.items() if c.id != gate_id}
        try:
            challenge = self.bank.answer(gate_id, key_id, answer)
        except WrongAnswer:
            with self._lock:
                self._wrong.setdefault(key_id, _Times()).add(self._clock(), WRONG_MEMORY_S)
            raise
        policy = self.policies.get(challenge.scope) or GatePolicy()
        return self.signer.issue(key_id, challenge.scope, self._clock() + policy.token_ttl_s, policy.token_uses)

    def _challenge(self, key_id: str, group: str, difficulty: int, policy: GatePolicy, now: float) -> Challenge:
        """The key's open gate on `group` if it is hard enough and unexpired, else one from the bank."""
        with self._lock:
            found = self._open.get((key_id, group))
        if found is not None and found.expires_at > now and found.difficulty >= difficulty:
            return found
        if self._empty is not None and self._empty[0] > now:  # a hammering client must not cost a query each time
            empty = self._empty[1]  # raised anew: re-raising one instance grows its traceback (and keeps every frame) per refusal
            raise GateBankEmpty(empty.message, retry_after_s=empty.retry_after_s)
        try:
            challenge = self.bank.issue(key_id, group, difficulty, policy.gate_ttl_s)  # an indexed query: cheaper than a thread hop
        except GateBankEmpty as exc:
            self._empty = (now + EMPTY_MEMORY_S, exc)
            raise
        finally:
            if self._on_issue is not None:
                self._on_issue()  # a gate issued, or none left: the filler looks at the bank
        with self._lock:
            self._open[(key_id, group)] = challenge
        return challenge

    def _count(self, key_id: str, group: str, policy: GatePolicy, now: float) -> None:
        with self._lock:
            self._admitted.setdefault((key_id, group), _Times()).add(now, policy.window_s)

    def _spend(self, claims: TokenClaims, now: float) -> None:
        with self._lock:
            self._spent = {j: v for j, v in self._spent.items() if v[1] > now} if len(self._spent) > 10_000 else self._spent
            used, _ = self._spent.get(claims.token_id, (0, claims.expires_at))
            if used >= claims.uses:
                raise BadToken(f"the gate token's {claims.uses} request(s) are spent; solve a new gate")
            self._spent[claims.token_id] = (used + 1, claims.expires_at)


def _message(group: str, reason: str, refused: str | None) -> str:
    why = {
        "always": f"/v1/{group} needs a solved reasoning gate for each access",
        "rate": f"this key's request rate on /v1/{group} is over its threshold",
        "load": "the server is loaded",
    }[reason]
    token = f" ({refused})" if refused else ""
    return (
        f"{why}: solve details.gate (the initials of its clues' answers spell a word), POST the word to "
        f"details.gate.solve, and send the token it returns in the {HEADER} header{token}"
    )


class DispatcherLoad:
    """The scheduler's load as the gatekeeper reads it: queued deadline seconds per worker, re-asked at most every `max_age_s`."""

    def __init__(self, dispatcher: Any, max_age_s: float = 0.5) -> None:
        self.dispatcher = dispatcher
        self.max_age_s = max_age_s
        self._value = 0.0
        self._at = float("-inf")

    async def __call__(self) -> float:
        now = time.monotonic()
        if now - self._at > self.max_age_s:
            self._value = await self.dispatcher.deadline_backlog_s.remote()
            self._at = now
        return self._value
