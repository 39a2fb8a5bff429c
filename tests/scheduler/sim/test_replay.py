"""Replay prompts: the real workers must see exactly the calls the simulator models."""

from __future__ import annotations

import pytest

from sloflow.scheduler.sim.replay import prompt_for
from sloflow.scheduler.sim.traces import CallShape


def _tokenizer(name: str):  # type: ignore[no-untyped-def]
    from sloflow.llm.models import is_available, model_path

    if not is_available(name):
        pytest.skip(f"{name} is not installed")
    import llama_cpp

    from sloflow.config import get_settings

    return llama_cpp.Llama(model_path=str(model_path(name, get_settings().home / "models")), vocab_only=True, verbose=False)


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_replay_prompts_hold_exactly_the_traced_tokens_and_share_only_the_template(model: str) -> None:
    tok = _tokenizer(model)
    bos = 1 if tok._model.add_bos_token() else 0

    def tokens(c: CallShape, salt: int) -> list[int]:
        return tok.tokenize(prompt_for(c, salt).encode(), add_bos=True, special=False)

    for c in (CallShape("Refiner", 77, 60, 46), CallShape("Refiner", 155, 48, 46), CallShape("Selector", 276, 12, 104), CallShape("x", 40, 4)):
        assert len(tokens(c, 1)) == c.prompt_tokens + bos
    a, b = tokens(CallShape("Refiner", 77, 60, 46), 1), tokens(CallShape("Refiner", 155, 48, 46), 2)
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert 46 + bos <= shared <= 46 + bos + 1  # the template (a chance match of one more word at most)
    assert tokens(CallShape("Refiner", 77, 60, 46), 1) != tokens(CallShape("Refiner", 77, 60, 46), 2)
