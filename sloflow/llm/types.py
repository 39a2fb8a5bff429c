"""The one representation of an LLM request and its result, shared by every backend."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class Message(BaseModel):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


def shared_prefix(messages: list[Message]) -> list[Message]:
    """The leading messages that other calls share, and a worker's prompt cache may already hold.

    The leading system messages (a stage's instructions, sources, examples): a planner's repair
    and the answer that continues its conversation share them with the plan call, so all three
    key the same worker. Without a system message, everything before the last message.
    """
    system = 0
    while system < len(messages) - 1 and messages[system].role == "system":
        system += 1
    return messages[:system] if system else messages[:-1]


class GenerateRequest(BaseModel):
    """What to generate: chat `messages` or a raw `prompt` (exactly one), and how."""

    messages: list[Message] | None = None
    prompt: str | None = None
    max_tokens: int = Field(256, ge=1, le=32768)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    # A JSON schema that constrains the output (a llama.cpp grammar for embedded models).
    json_schema: dict[str, Any] | None = None
    # Never stop at end-of-sequence: decode exactly `max_tokens` (benchmarks; embedded backend).
    ignore_eos: bool = False
    # Text the answer already begins with (sent before its worker died): generate what follows it.
    answer_prefix: str = ""

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of `messages` or `prompt`")
        if self.messages is not None and not self.messages:
            raise ValueError("`messages` must hold at least one message")
        return self


class Completion(BaseModel):
    """A finished generation with its token counts and timings."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    finish_reason: Literal["stop", "length"] = "stop"
    model: str = ""
    # Set by the scheduler's worker actor: which worker answered, and how long the call queued there.
    worker: str | None = None
    queue_s: float | None = None
    # Set by a backend that ran a background call on an instance of its own (EmbeddedBackend's):
    # the KV caches the other calls reuse were left as they were.
    apart: bool = False


class Chunk(BaseModel):
    """A piece of a streamed generation; the last chunk carries `completion`."""

    text: str = ""
    completion: Completion | None = None


PREFIX_BLOCK_CHARS = 256  # about 64 tokens: the grain at which two prompts' shared start is matched


def prefix_blocks(messages: list[Message]) -> tuple[str, ...]:
    """Chained hashes of the shared prefix's whole `PREFIX_BLOCK_CHARS` blocks, in order.

    vLLM's prefix-caching block hashes, over text: each hash covers everything up to the end of its
    block, so two prompts whose shared prefixes agree on their first n blocks have the same first n
    hashes whatever follows, and a worker holding one prompt holds that much of the other. The
    whole-prefix key matches only identical prefixes; these find a partly shared one (a
    speculative prefill whose guess changed a passage near the end).
    """
    text = "".join(f"{m.role}\x00{m.content}\x01" for m in shared_prefix(messages))
    chain = hashlib.sha1()
    out = []
    for start in range(0, len(text) - PREFIX_BLOCK_CHARS + 1, PREFIX_BLOCK_CHARS):
        chain.update(text[start : start + PREFIX_BLOCK_CHARS].encode())
        out.append(chain.copy().hexdigest()[:16])
    return tuple(out)


def approx_tokens(text: str) -> int:
    """Tokens in `text` before any tokenizer has seen it: one per four characters.

    The dispatcher decides before a worker tokenizes, the emulated backend has no tokenizer, and
    some OpenAI-compatible servers stream no usage: all three use this one estimate.
    """
    return max(len(text) // 4, 1)


PREFIX_BLOCK_TOKENS = approx_tokens("x" * PREFIX_BLOCK_CHARS)  # what one held block of a prefix saves, by the same estimate


@dataclass(frozen=True)
class Speed:
    """How fast an LLM call goes: prompt tokens prefilled and tokens decoded per second.

    The defaults were measured for the embedded 1.5B model on 2 cores (ARCHITECTURE.md); a client
    that knows its workers (`SpeedSource`) gives their measured speed instead.
    """

    prefill_tok_s: float = 120.0
    decode_tok_s: float = 32.0

    def call_s(self, prompt_tokens: int, output_tokens: int) -> float:
        """Expected seconds of one call of this shape, queueing aside."""
        return prompt_tokens / self.prefill_tok_s + output_tokens / self.decode_tok_s
