"""Embedded backend: llama.cpp (llama-cpp-python) running a GGUF in this process.

One `Llama` instance serves one request at a time (the binding has no continuous batching), so a
backend holds `instances` copies and that is its number of slots. Each instance keeps its last
prompt in its KV cache and reuses the longest matching prefix of the next one.

Background calls (no deadline) run on one more instance of their own when it is free. A background
call is preempted whenever a deadline call waits, so on a shared instance the deadline call would
find the background prompt in the KV cache and prefill its own prompt from scratch; apart, the
deadline calls' cached prefixes survive. The weights are memory-mapped once, so the extra instance
costs its KV cache and buffers, not another copy of the model; and it is loaded only at the first
background call, since many backends never get one.

Prompts are evaluated in chunks of `PREFILL_CHUNK` tokens, and each finished chunk stays in the KV
cache: a prefill stopped part-way (a preempted speculative prefill, a cancelled call) leaves its
finished chunks for the next call with the same prefix, like vLLM's chunked prefill.

With `lend_idle_cores`, each chunk and each decoded token also runs on the cores of sibling
workers that are idle at that moment (`spare_cores`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from sloflow.errors import BackendError, InvalidRequest
from sloflow.llm.models import model_path
from sloflow.llm.spare_cores import SpareCores
from sloflow.llm.types import Chunk, Completion, GenerateRequest

log = logging.getLogger(__name__)

# Tokens per prompt-evaluation batch: small enough that a stopped prefill keeps most of its work
# (about 1.3 s of the 1.5B model on one thread, where a speculative prefill's guess changes every
# 1.5 s as words are typed; at 128 a changed guess lost each chunk it had begun), large enough that
# prefill keeps its speed (64 tokens: 2% slower than 128 here, 32: 9%).
PREFILL_CHUNK = 64


class _Meter:
    """Counts sampled tokens and stamps the first one; llama.cpp calls it after every sample.

    Like vLLM, the count includes an end-of-sequence token. llama-cpp-python samples one token
    past `max_tokens` before it notices the limit, hence the cap.
    """

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.start = time.perf_counter()
        self.first: float | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stopped = False  # set from another thread (`stop`) to end the generation at the next token
        self.abort_flag = ctypes.create_string_buffer(2)  # b"\0\0"; llama.cpp's abort callback reads it

    def stop(self) -> None:
        """End the generation: at the next sampled token, or inside a prompt evaluation (see `_abort_on_stop`)."""
        self.stopped = True
        self.abort_flag[0] = b"\x01"

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        if self.first is None:
            self.first = time.perf_counter()
            self.prompt_tokens = len(input_ids)
        self.completion_tokens += 1
        return self.stopped

    def completion(self, text: str, finish: str | None, model: str) -> Completion:
        end = time.perf_counter()
        return Completion(
            text=text,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=min(self.completion_tokens, self.max_tokens),
            ttft_s=(self.first or end) - self.start,
            total_s=end - self.start,
            finish_reason="length" if finish == "length" else "stop",
            model=model,
        )


@functools.cache
def _strlen(llama_cpp: Any) -> Any:
    """libc's `strlen` as a `ggml_abort_callback`: on a two-byte flag it answers 1 (abort) or 0."""
    address = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
    return llama_cpp.ggml_abort_callback(address)


def _abort_on_stop(llama_cpp: Any, llm: Any, meter: _Meter) -> None:
    """Let `meter.stop()` abort llama.cpp inside a prompt evaluation too, where no token is sampled.

    Without it a cancelled (or preempted) call holds its instance until the whole prompt is
    evaluated: seconds for a long prompt. llama.cpp calls the abort callback between graph nodes,
    hundreds of times a token, so a Python callback (taking the GIL each time) would slow every
    call; `strlen` on the meter's flag answers natively. An aborted evaluation raises in its thread
    and leaves nothing behind: the next call drops the KV entries past the tokens it recorded.
    """
    set_abort = llama_cpp.llama_cpp._lib.llama_set_abort_callback
    set_abort.argtypes = [ctypes.c_void_p, llama_cpp.ggml_abort_callback, ctypes.c_void_p]
    set_abort.restype = None
    set_abort(llm._ctx.ctx, _strlen(llama_cpp), ctypes.cast(meter.abort_flag, ctypes.c_void_p))
    llm.sloflow_abort_flag = meter.abort_flag  # the flag lives as long as llama.cpp may read it


def _chat_formatter(llm: Any, llama_cpp: Any) -> Any:
    """The GGUF's own chat template, or a plain transcript format for models without one."""
    from llama_cpp import llama_chat_format

    template = llm.metadata.get("tokenizer.chat_template")
    if template:
        eos, bos = llm.token_eos(), llm.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        )

    def transcript(messages: list[dict[str, str]]) -> Any:
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"
        return llama_chat_format.ChatFormatterResponse(prompt=text, stop=["\nUser:"])

    return lambda messages: transcript(messages)


class EmbeddedBackend:
    """A GGUF model served by llama.cpp in-process, from an embedded model name or a path."""

    def __init__(
        self,
        model: str,
        *,
        models_dir: Path,
        threads: int = 2,
        context_tokens: int = 4096,
        instances: int = 1,
        lend_idle_cores: bool = False,
    ) -> None:
        import llama_cpp  # imported here so that importing sloflow stays light

        self._llama_cpp = llama_cpp
        self.name = model
        self.path = model_path(model, models_dir)
        self.threads = threads
        self.context_tokens = context_tokens
        self.spare_cores = SpareCores(threads) if lend_idle_cores else None
        self._free: asyncio.Queue[Any] | None = None
        self._instances = [self._load() for _ in range(instances)]
        self._background: Any = None  # the background calls' instance, once the first of them loaded it
        self._background_load: asyncio.Future[Any] | None = None
        self._background_busy = False
        self._chat = _chat_formatter(self._instances[0], llama_cpp)
        log.info("loaded %s from %s (%d instance(s), %d threads)", model, self.path, instances, threads)

    def _load(self) -> Any:
        llm = self._llama_cpp.Llama(
            model_path=str(self.path),
            n_ctx=self.context_tokens,
            n_batch=PREFILL_CHUNK,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        if self.spare_cores is not None:
            _decode_on_spare_cores(llm, self.spare_cores)
        return llm

    def _computing(self) -> contextlib.AbstractContextManager[None]:
        """Held by the thread that runs a call: the worker's core is in use (see `spare_cores`)."""
        return self.spare_cores.running() if self.spare_cores is not None else contextlib.nullcontext()

    @property
    def slots(self) -> int:
        """How many requests this backend can run at once."""
        return len(self._instances)

    def cached_prefixes(self) -> list[list[int]]:
        """The token sequences each instance still holds in its KV cache (for prefix-aware dispatch)."""
        return [list(llm._input_ids[: llm.n_tokens]) for llm in self._instances]

    def count_tokens(self, text: str) -> int:
        """Number of tokens of `text` under this model's tokenizer."""
        return len(self._instances[0].tokenize(text.encode(), add_bos=False, special=True))

    @contextlib.asynccontextmanager
    async def _instance(self, background: bool = False) -> AsyncIterator[Any]:
        if background and not self._background_busy:
            self._background_busy = True
            try:
                if self._background is None:
                    # Loaded in a thread, so the calls running here go on meanwhile; shielded, so a
                    # load that a preempted call started is finished for the next one.
                    if self._background_load is None:
                        self._background_load = asyncio.ensure_future(asyncio.to_thread(self._load))
                    try:
                        self._background = await asyncio.shield(self._background_load)
                    except Exception:
                        self._background_load = None  # the next background call tries again
                        raise
                yield self._background
            finally:
                self._background_busy = False
            return
        if self._free is None:  # created lazily: it must belong to the running loop
            self._free = asyncio.Queue()
            for llm in self._instances:
                self._free.put_nowait(llm)
        llm = await self._free.get()
        try:
            yield llm
        finally:
            self._free.put_nowait(llm)

    def _kwargs(self, req: GenerateRequest, meter: _Meter) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "stop": req.stop or None,
            "seed": req.seed,
            "stopping_criteria": self._llama_cpp.StoppingCriteriaList([meter]),
        }
        if req.ignore_eos:  # forbid every end-of-generation token, so exactly max_tokens are decoded
            kwargs["logit_bias"] = dict.fromkeys(self._eog_tokens, float("-inf"))
        if req.json_schema is not None:
            try:
                kwargs["grammar"] = self._llama_cpp.LlamaGrammar.from_json_schema(
                    json.dumps(req.json_schema), verbose=False
                )
            except Exception as exc:  # the converter raises bare Exceptions for unsupported schemas
                raise InvalidRequest(f"json_schema cannot be turned into a grammar: {exc}") from None
        return kwargs

    @functools.cached_property
    def _eog_tokens(self) -> list[int]:
        """The vocabulary's end-of-generation tokens (found once: it scans the whole vocabulary)."""
        llm = self._instances[0]
        return [t for t in range(llm.n_vocab()) if self._llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)]

    def prompt_tokens(self, req: GenerateRequest) -> list[int]:
        """The exact tokens the model will prefill for `req` (chat template applied)."""
        return self._prompt(self._instances[0], req)[0]

    def _prompt(self, llm: Any, req: GenerateRequest) -> tuple[list[int], list[str]]:
        if req.messages is None:
            return llm.tokenize((req.prompt + req.answer_prefix).encode(), add_bos=True, special=False), []
        # Chat is rendered here rather than by create_chat_completion, which would not pass
        # our stopping criteria (the meter) through.
        out = self._chat(messages=[m.model_dump() for m in req.messages])
        # The answer prefix follows the template's assistant header, so the model continues it.
        prompt = out.prompt + req.answer_prefix
        tokens = llm.tokenize(prompt.encode(), add_bos=not getattr(out, "added_special", False), special=True)
        stops = [out.stop] if isinstance(out.stop, str) else list(out.stop or [])
        return tokens, stops

    def _complete(self, llm: Any, req: GenerateRequest, meter: _Meter) -> Any:
        with self._computing():
            return self._run(llm, req, meter, False)

    def _run(self, llm: Any, req: GenerateRequest, meter: _Meter, stream: bool) -> Any:
        kwargs = self._kwargs(req, meter)
        tokens, template_stops = self._prompt(llm, req)
        if template_stops:
            kwargs["stop"] = (kwargs["stop"] or []) + template_stops
        try:
            return llm.create_completion(prompt=tokens, stream=stream, **kwargs)
        except ValueError as exc:  # e.g. the prompt exceeds the context window
            raise InvalidRequest(str(exc)) from None

    async def generate(self, request: GenerateRequest, *, background: bool = False) -> Completion:
        async with self._instance(background) as llm:
            meter = _Meter(request.max_tokens)
            _abort_on_stop(self._llama_cpp, llm, meter)
            job = asyncio.ensure_future(asyncio.to_thread(self._complete, llm, request, meter))
            try:
                out = await asyncio.shield(job)
            except asyncio.CancelledError:
                # Cancelled (e.g. by ray.cancel): stop llama.cpp at its next token, and free the
                # instance only once its thread has let go of it.
                meter.stop()
                await _settled(job)
                raise
            except InvalidRequest:
                raise
            except Exception as exc:
                raise BackendError(f"{self.name} failed to generate: {exc}") from exc
            choice = out["choices"][0]
            completion = meter.completion(choice["text"] or "", choice.get("finish_reason"), self.name)
            # A background call finds the background instance busy now and then and takes a shared one.
            return completion.model_copy(update={"apart": llm is self._background})

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        async with self._instance() as llm:
            meter = _Meter(request.max_tokens)
            _abort_on_stop(self._llama_cpp, llm, meter)
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
            stop = threading.Event()

            def produce() -> None:
                try:
                    with self._computing():
                        pieces: Iterator[dict[str, Any]] = self._run(llm, request, meter, True)
                        for piece in pieces:
                            if stop.is_set():  # the consumer went away: stop generating
                                break
                            loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
                    loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
                except Exception as exc:
                    loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

            worker = loop.run_in_executor(None, produce)
            parts: list[str] = []
            finish: str | None = None
            try:
                while True:
                    kind, item = await queue.get()
                    if kind == "end":
                        break
                    if kind == "error":
                        if isinstance(item, InvalidRequest):
                            raise item
                        raise BackendError(f"{self.name} failed to generate: {item}") from item
                    choice = item["choices"][0]
                    text = choice.get("text")
                    finish = choice.get("finish_reason") or finish
                    if text:
                        parts.append(text)
                        yield Chunk(text=text)
                yield Chunk(completion=meter.completion("".join(parts), finish, self.name))
            finally:
                stop.set()
                meter.stop()  # stops llama.cpp at its next token (or mid-prompt), not only at the next piece
                await _settled(worker)  # the instance is free only once its thread has stopped

    async def close(self) -> None:
        for llm in [*self._instances, self._background]:
            if llm is not None:
                llm.close()
        self._instances.clear()
        if self.spare_cores is not None:
            self.spare_cores.close()
            self.spare_cores = None


def _decode_on_spare_cores(llm: Any, cores: SpareCores) -> None:
    """Run each of `llm`'s batches (a prompt chunk or one decoded token) on the threads `cores` lends it."""
    ctx = llm._ctx
    decode = ctx.decode

    def decode_lent(batch: Any) -> None:
        with cores.batch() as threads:
            ctx.set_n_threads(threads, threads)
            decode(batch)

    ctx.decode = decode_lent


async def _settled(job: asyncio.Future[Any]) -> None:
    """Wait until `job` (a thread holding a llama.cpp instance) has finished, whatever it raised.

    A second cancellation while waiting (a call cancelled twice: the client's hang-up and the
    deadline) must not end the wait: the instance would go back to the pool while its thread
    still decodes on it, and the next call on it crashed the process (segfault in llama.cpp).
    """
    cancelled = False
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break
    if not job.cancelled():
        job.exception()  # retrieved, so asyncio does not log it as never retrieved
    if cancelled:
        raise asyncio.CancelledError

