"""What a stage receives besides the state: `ctx.llm`, the run's tools, `ctx.emit` and its budget.

`RunScope` is one run's shared part (deadline, LLM client, tools, event sink, cancellation);
`StageContext` is what a stage invocation sees. `ctx.llm` fills in a `CallContext` for every call,
so stage code never handles deadlines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from sloflow.errors import BackendError, Cancelled, ConfigError, DeadlineExceeded, NotFound, OutputTruncated
from sloflow.llm.client import CallContext, LLMClient, SpeedSource
from sloflow.llm.types import Completion, GenerateRequest, Message, Speed, shared_prefix

# Records an event of the run: (kind, stage, data).
Emit = Callable[[str, str | None, dict[str, Any]], None]
Tools = Mapping[str, Callable[..., Any]]


def bound_tool(tools: Mapping[str, Any], name: str, missing: str) -> Any:
    """The run tool `name`; `NotFound(missing)` on a runtime that binds none (say there what binds it)."""
    found = tools.get(name)
    if found is None:
        raise NotFound(missing)
    return found


def _drop(kind: str, stage: str | None, data: dict[str, Any]) -> None:
    """Events of a graph invoked outside a runtime go nowhere."""


class RunScope:
    """One run's deadline, LLM client, tools and event sink, shared by all its stages."""

    __slots__ = ("run_id", "workflow", "deadline", "client", "tools", "emit", "tenant", "cancelled", "_pending")

    def __init__(
        self,
        run_id: str = "",
        workflow: str = "",
        deadline: float | None = None,
        client: LLMClient | None = None,
        tools: Tools | None = None,
        emit: Emit = _drop,
        tenant: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.deadline = deadline
        self.client = client
        self.tools: Tools = tools or {}
        self.emit = emit
        self.tenant = tenant
        self.cancelled = False
        self._pending: set[asyncio.Task[Any]] = set()

    def cancel(self) -> None:
        """Stop before the next stage and withdraw the LLM calls now pending."""
        self.cancelled = True
        for task in list(self._pending):
            task.cancel()

    def check_cancelled(self, stage: str) -> None:
        """Raise `Cancelled` if the run was cancelled (called between stages)."""
        if self.cancelled:
            raise Cancelled(f"run {self.run_id} was cancelled before stage {stage!r}")

    async def track(self, call: Any, stage: str, reserve_s: float = 0.0) -> Any:
        """Await an LLM call as a task that `cancel()` can withdraw and the run's deadline cuts.

        At the deadline (less `reserve_s`, the time a stage keeps for what follows the call) the
        call is cancelled, on its worker too, and the stage gets `DeadlineExceeded`, which it may
        catch to answer with what it has.
        """
        left = None if self.deadline is None else self.deadline - reserve_s - time.time()
        if self.cancelled or (left is not None and left <= 0):
            call.close()  # never started: close the coroutine so it is not left un-awaited
            self.check_cancelled(stage)
            raise DeadlineExceeded(f"deadline exceeded at stage {stage!r}: no time was left for its LLM call")
        task = asyncio.ensure_future(call)
        self._pending.add(task)
        try:
            async with asyncio.timeout(left):
                return await task
        except TimeoutError:
            if not task.cancelled():
                raise  # the call's own timeout, not the run's deadline
            raise DeadlineExceeded(
                f"deadline exceeded at stage {stage!r}: its LLM call was still running at the run's deadline and was cancelled"
            ) from None
        except asyncio.CancelledError:
            if self.cancelled and task.cancelled():
                raise Cancelled(f"run {self.run_id} was cancelled during stage {stage!r}; its LLM call was withdrawn") from None
            raise
        finally:
            self._pending.discard(task)


@dataclasses.dataclass(frozen=True)
class Streamed:
    """A streamed call's text, when its first piece arrived (`time.time()`, None if none did), and its completion."""

    text: str
    first_at: float | None
    completion: Completion | None


class StageLLM:
    """`ctx.llm`: LLM calls that carry the run's deadline and this stage's budget."""

    __slots__ = ("_scope", "_call")

    def __init__(self, scope: RunScope, call: CallContext) -> None:
        self._scope = scope
        self._call = call

    @property
    def call_context(self) -> CallContext:
        """What every call of this stage carries: run, stage, deadline, budget."""
        return self._call

    def _context(self, request: GenerateRequest, model: str | None) -> CallContext:
        """This stage's context for `request`: the model asked for, and a key of its shared prefix.

        The leading system messages (instructions, schema, examples: `shared_prefix`) are what
        calls of a stage share, so they key prefix-aware dispatch to a worker whose prompt cache
        holds them.
        """
        changes: dict[str, Any] = {}
        if model is not None:
            changes["model"] = model
        if request.messages is not None and len(request.messages) > 1 and self._call.prefix_key is None:
            shared = json.dumps([[m.role, m.content] for m in shared_prefix(request.messages)])
            changes["prefix_key"] = hashlib.sha1(shared.encode()).hexdigest()[:16]
        return dataclasses.replace(self._call, **changes) if changes else self._call

    def _client(self) -> LLMClient:
        client = self._scope.client
        if client is None:
            raise ConfigError(f"stage {self._call.stage!r} called ctx.llm, but no LLM client is bound to this run")
        return client

    async def speed(self, model: str | None = None) -> Speed | None:
        """How fast the workers that would serve a call for `model` go, as measured; None if the
        client cannot say, or no client is bound (size work with the workflow's declared `Speed` then)."""
        client = self._scope.client
        return await client.speed(model) if isinstance(client, SpeedSource) else None

    async def generate(
        self, request: GenerateRequest, *, model: str | None = None, reserve_s: float = 0.0, background: bool = False
    ) -> Completion:
        """Place one call and return the whole completion; `model` asks for a worker serving it.

        The call ends by the run's deadline less `reserve_s` (`DeadlineExceeded` otherwise).
        `background=True` places it without a deadline: speculative work that only fills idle
        capacity and never delays a deadline call; the run's end still cuts it (a prompt prefill
        for a later call is `prefill`).
        """
        call = self._context(request, model)
        if background:
            call = dataclasses.replace(call, deadline=None, budget_s=None)
        return await self._scope.track(self._generated(request, call), self._call.stage, reserve_s)

    async def prefill(self, request: GenerateRequest, *, model: str | None = None) -> Completion:
        """Prefill `request`'s prompt on a worker as background work, so that a deadline call with
        the same prefix, placed there by prefix-aware dispatch, finds it in that worker's KV cache
        (speculative prefill). One token is generated; the run's end still cuts it.
        """
        call = dataclasses.replace(self._context(request, model), deadline=None, budget_s=None, warms_cache=True)
        first_token = request.model_copy(update={"max_tokens": 1})
        return await self._scope.track(self._generated(first_token, call), self._call.stage, 0.0)

    async def stream(self, request: GenerateRequest, *, model: str | None = None, reserve_s: float = 0.0) -> Streamed:
        """Place one call, record each piece as a `token` event, and return the text with its first piece's time."""
        call = self._context(request, model)
        return await self._scope.track(self._streamed(request, call), self._call.stage, reserve_s)

    async def text(
        self,
        prompt: str | list[Message] | list[dict[str, str]],
        *,
        system: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        tokens: bool = False,
        model: str | None = None,
        reserve_s: float = 0.0,
    ) -> str:
        """The generated text; a string prompt is one user message. `tokens=True` emits each piece."""
        request = _request(prompt, system, max_tokens=max_tokens, temperature=temperature, stop=stop or [])
        if not tokens:
            return (await self.generate(request, model=model, reserve_s=reserve_s)).text
        return await self._scope.track(self._stream_text(request, self._context(request, model)), self._call.stage, reserve_s)

    async def json(
        self,
        prompt: str | list[Message] | list[dict[str, str]],
        *,
        schema: type[BaseModel] | dict[str, Any],
        system: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        model: str | None = None,
        reserve_s: float = 0.0,
        cut: Callable[[str], str | None] | None = None,
    ) -> Any:
        """Output constrained to `schema`: an instance of a pydantic model, or a dict for a JSON schema.

        `cut` sees the text as it is generated; once it returns a text, generation stops (the call
        is cancelled on its worker) and that text is the answer: a caller that can tell the rest
        is a loop closes the JSON itself instead of paying for the loop's tokens.
        """
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        json_schema = schema.model_json_schema() if is_model else schema
        request = _request(prompt, system, max_tokens=max_tokens, temperature=temperature, json_schema=json_schema)
        if cut is None:
            out = await self.generate(request, model=model, reserve_s=reserve_s)
            text, finish = out.text, out.finish_reason
        else:
            call = self._context(request, model)
            streamed = await self._scope.track(self._streamed(request, call, tokens=False, cut=cut), self._call.stage, reserve_s)
            text = streamed.text
            finish = "cut" if streamed.completion is None else streamed.completion.finish_reason
        try:
            return schema.model_validate_json(text) if is_model else json.loads(text)
        except (ValidationError, ValueError) as exc:
            if finish == "length":  # the grammar kept it on the schema, the limit cut it short
                raise OutputTruncated(
                    f"stage {self._call.stage!r}: the JSON answer was cut at max_tokens={max_tokens} before it was "
                    "complete; raise max_tokens or ask for a shorter answer",
                    details={"max_tokens": max_tokens, "text": text[:500]},
                ) from None
            raise BackendError(
                f"stage {self._call.stage!r}: the model's answer does not fit the schema ({str(exc)[:200]})",
                details={"text": text[:500]},
            ) from None

    async def _generated(self, request: GenerateRequest, call: CallContext) -> Completion:
        """One call whose whole completion comes at once, recorded as an `llm_call` event."""
        started = time.time()
        out = await self._client().generate(request, call)
        self._record_call(out, started)
        return out

    async def _streamed(
        self, request: GenerateRequest, call: CallContext, *, tokens: bool = True, cut: Callable[[str], str | None] | None = None
    ) -> Streamed:
        """One streamed call, recorded as an `llm_call` event; `tokens` emits each piece as a `token` event.

        `cut` sees the text so far after each piece; once it returns a text, the stream is closed
        (which stops the generation on its worker) and that text is the call's, with no completion.
        """
        pieces: list[str] = []
        first_at: float | None = None
        completion: Completion | None = None
        started = time.time()
        stream = self._client().stream(request, call)
        try:
            async for chunk in stream:
                if chunk.completion is not None:
                    completion = chunk.completion
                if chunk.text:
                    first_at = first_at or time.time()
                    pieces.append(chunk.text)
                    if tokens:
                        self._scope.emit("token", self._call.stage, {"text": chunk.text})
                    if cut is not None and (closed := cut("".join(pieces))) is not None:
                        self._record_cut(started, first_at, len(pieces))
                        return Streamed(closed, first_at, None)
        finally:
            close = getattr(stream, "aclose", None)  # an early end stops the generation on its worker
            if close is not None:
                await close()
        self._record_call(completion, started)
        return Streamed("".join(pieces), first_at, completion)

    def _record_call(self, out: Completion | None, started: float) -> None:
        """An `llm_call` event: where the call ran and how its time split (queue, prefill, decode)."""
        if out is None:
            return
        self._scope.emit("llm_call", self._call.stage, {
            "started_at": started, "worker": out.worker, "model": out.model, "queue_s": out.queue_s,
            "prefill_s": out.ttft_s, "decode_s": max(out.total_s - out.ttft_s, 0.0),
            "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
        })

    def _record_cut(self, started: float, first_at: float, pieces: int) -> None:
        """The `llm_call` event of a call cut before its completion came: only what the stream showed.

        Where it ran and its prompt's size come with the completion, so they are unknown; its
        queueing is counted in its prefill (the time to the first piece).
        """
        self._scope.emit("llm_call", self._call.stage, {
            "started_at": started, "worker": None, "model": None, "queue_s": None, "cut": True,
            "prefill_s": first_at - started, "decode_s": max(time.time() - first_at, 0.0),
            "prompt_tokens": None, "completion_tokens": pieces,
        })

    async def _stream_text(self, request: GenerateRequest, call: CallContext) -> str:
        return (await self._streamed(request, call)).text


def _request(prompt: str | list[Any], system: str | None, **options: Any) -> GenerateRequest:
    messages = [Message(role="user", content=prompt)] if isinstance(prompt, str) else [Message.model_validate(m) for m in prompt]
    if system is not None:
        messages.insert(0, Message(role="system", content=system))
    return GenerateRequest(messages=messages, **options)


class StageContext:
    """What one stage invocation sees: `llm`, `emit`, the run's tools (`ctx.retrieve`...) and its budget."""

    __slots__ = ("run_id", "workflow", "stage", "deadline", "budget_s", "_scope", "_llm")

    def __init__(self, scope: RunScope, stage: str, budget_s: float | None) -> None:
        self.run_id = scope.run_id
        self.workflow = scope.workflow
        self.stage = stage
        self.deadline = scope.deadline
        self.budget_s = budget_s
        self._scope = scope
        self._llm: StageLLM | None = None

    @property
    def llm(self) -> StageLLM:
        """LLM calls carrying this run's deadline and this stage's budget."""
        if self._llm is None:  # built on first use: many stages never call an LLM
            scope = self._scope
            call = CallContext(
                run_id=scope.run_id,
                workflow=scope.workflow,
                stage=self.stage,
                deadline=scope.deadline,
                budget_s=self.budget_s,
                tenant=scope.tenant,
            )
            self._llm = StageLLM(scope, call)
        return self._llm

    def emit(self, message: str = "", **data: Any) -> None:
        """Record a progress event for clients following the run."""
        self._scope.emit("progress", self.stage, {"message": message, **data} if message else data)

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled: a stage waiting on something other than an LLM call checks it."""
        return self._scope.cancelled

    @property
    def tools(self) -> Tools:
        """The tools bound to this run by name."""
        return self._scope.tools

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Tools are injected at run start (ctx.retrieve, ctx.sql...), never imported by stages.
        tools = self._scope.tools
        if name in tools:
            return tools[name]
        raise AttributeError(
            f"stage {self.stage!r} asked for ctx.{name}, but no tool {name!r} is bound to this run "
            f"(bound: {sorted(tools) or 'none'})"
        )
