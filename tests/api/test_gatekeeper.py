"""The gatekeeper on its own (no app, no model): what a refusal from an empty bank costs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloflow.api.gate_tokens import TokenSigner
from sloflow.api.gatekeeper import Gatekeeper
from sloflow.errors import GateBankEmpty
from sloflow.gating import GatePolicy
from sloflow.tenancy import Principal
from sloflow.workflows.builtin.gates.bank import BANK_FILE, GateBank, server_secret


def depth(exc: BaseException) -> int:
    tb, n = exc.__traceback__, 0
    while tb is not None:
        tb, n = tb.tb_next, n + 1
    return n


async def test_refusals_from_an_empty_bank_are_each_a_fresh_error_whose_traceback_does_not_grow(tmp_path: Path) -> None:
    bank = GateBank(tmp_path / BANK_FILE, server_secret(tmp_path))
    keeper = Gatekeeper(bank, TokenSigner(b"s" * 32), {"models": GatePolicy(mode="always")})
    refusals = []
    for _ in range(50):  # the first asks the bank; the rest are answered from memory
        with pytest.raises(GateBankEmpty) as caught:
            await keeper.admit("/v1/models", None, Principal("t", "member", key_id="k1"))
        refusals.append(caught.value)
    assert len({id(e) for e in refusals}) == len(refusals)
    assert depth(refusals[-1]) <= depth(refusals[1])
    bank.close()
