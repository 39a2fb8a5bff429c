"""The dispatcher Ray actor: the global view of all workers, dispatch, re-dispatch, add/drain/remove.

Every call passes through `generate`, which owns it until it returns: if the worker holding the
call dies, the call is dispatched again; if the re-dispatch policy moves it, it follows. A call is
answered exactly once, by the one `generate` that owns it. Cancelling `generate` or `stream`
(`ray.cancel`) cancels the call on its worker, which withdraws it or stops generating it.

A stream whose worker dies after some text was sent continues on another worker from that text
(`GenerateRequest.answer_prefix`: the text is appended to the prompt after the assistant header,
and the model writes what follows). Re-generating and skipping the text already sent would only
be consistent if the new worker sampled the same tokens, which no backend promises (temperature,
other hardware, another model); continuing never repeats or contradicts what the client has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from sloflow.errors import BackendError, ConfigError, Conflict, InvalidRequest, NotFound, SloflowError
from sloflow.llm.types import Chunk, Completion, GenerateRequest, approx_tokens
from sloflow.scheduler.live.metrics import DispatcherMetrics
from sloflow.scheduler.live.worker import Outcome, WorkerActor, WorkerSpec
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.dispatch import eligible
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.scheduler import DEFAULT, make_scheduler
from sloflow.scheduler.policies.view import WorkerView

log = logging.getLogger(__name__)

DISPATCHER_NAME = "sloflow-dispatcher"


@dataclass
class Sent:
    """The text a stream has delivered, so that a retry on another worker continues after it."""

    before: list[str] = field(default_factory=list)  # pieces sent by workers that died since
    now: list[str] = field(default_factory=list)  # pieces sent by the current worker
    first_at: float | None = None

    def add(self, piece: str) -> None:
        self.first_at = self.first_at or time.time()
        self.now.append(piece)

    def worker_died(self) -> None:
        self.before += self.now
        self.now = []

    def tokens(self) -> int:
        # A backend sends about a token per piece, the emulated one several: take the larger guess.
        return max(len(self.before), approx_tokens("".join(self.before))) if self.before else 0

    def resume(self, call: Call, request: GenerateRequest) -> tuple[Call, GenerateRequest]:
        """The original `call` and `request`, changed to continue the answer after what was sent."""
        if not self.before:
            return call, request
        left = max(request.max_tokens - self.tokens(), 1)
        prefix = request.answer_prefix + "".join(self.before)
        more = replace(call, prompt_tokens=call.prompt_tokens + self.tokens(), output_tokens=left)
        return more, request.model_copy(update={"answer_prefix": prefix, "max_tokens": left})

    def merge(self, out: Completion, dispatched: float) -> Completion:
        """The whole answer: what died with earlier workers plus the last worker's completion."""
        if not self.before:
            return out
        now = time.time()
        return out.model_copy(
            update={
                "text": "".join(self.before) + out.text,
                "completion_tokens": self.tokens() + out.completion_tokens,
                "ttft_s": (self.first_at or now) - dispatched,
                "total_s": now - dispatched,
            }
        )


class Dispatcher:
    """Places calls on workers by the configured policies; `DispatcherActor` runs it in Ray."""

    def __init__(self, scheduler: str = DEFAULT, alpha: float = 0.5) -> None:
        self.scheduler = make_scheduler(scheduler, alpha)
        # In the order add_worker was called, not the order workers became ready: policies that
        # read the order (round-robin's turn, HEXGEN's base worker) then match the simulator's.
        self.views: dict[str, WorkerView] = {}
        self.added: list[str] = []
        self.handles: dict[str, Any] = {}
        self.redirect: dict[str, str] = {}  # call id -> worker it was moved to
        self.metrics = DispatcherMetrics()
        self.redispatched = 0

    def __repr__(self) -> str:
        return f"Dispatcher({self.scheduler.name}, {len(self.views)} workers)"

    async def add_worker(self, worker_id: str, spec: WorkerSpec) -> WorkerProfile:
        """Start a worker actor, wait for its profile, and begin dispatching to it."""
        if worker_id in self.added:
            raise Conflict(f"worker {worker_id!r} already exists; remove it first or pick another id")
        me = ray.get_runtime_context().current_actor
        handle = WorkerActor.options(**spec.actor_options(f"sloflow-worker-{worker_id}")).remote(
            worker_id, spec, self.scheduler.queue.name, me
        )
        self.added.append(worker_id)
        try:
            profile, model = await handle.ready.remote()
        except BaseException:
            self.added.remove(worker_id)
            raise
        self.handles[worker_id] = handle
        self.views[worker_id] = WorkerView(worker_id, profile, model=model)
        self.views = {w: self.views[w] for w in self.added if w in self.views}
        return profile

    async def drain(self, worker_id: str) -> None:
        """Stop sending calls to a worker and wait until it has finished the ones it holds."""
        view = self._view(worker_id)
        view.draining = True
        while view.queued or view.running:
            await asyncio.sleep(0.05)

    async def remove(self, worker_id: str) -> None:
        """Drain a worker, then stop its actor."""
        await self.drain(worker_id)
        handle = self.handles.pop(worker_id)
        self._drop(worker_id)
        try:
            await handle.close.remote()
        except RayActorError:
            pass  # already gone: nothing left to close
        ray.kill(handle)

    async def workers(self) -> list[dict[str, Any]]:
        """Each worker's id, profile, and how many calls it holds."""
        return [
            {"id": v.id, "profile": v.profile, "model": v.model, "queued": len(v.queued), "running": len(v.running), "draining": v.draining}
            for v in self.views.values()
        ]

    async def deadline_backlog_s(self) -> float:
        """Seconds of deadline work queued per worker (not yet running): the load that gates rise with."""
        if not self.views:
            return 0.0
        return sum(v.deadline_work_s() for v in self.views.values()) / len(self.views)

    async def stats(self) -> dict[str, Any]:
        return {"redispatched": self.redispatched, "workers": len(self.views)}

    def _view(self, worker_id: str) -> WorkerView:
        if worker_id not in self.views:
            raise NotFound(f"no worker {worker_id!r}; workers are {sorted(self.views)}")
        return self.views[worker_id]

    async def started(self, worker_id: str, call_id: str) -> None:
        """A worker began running a call (keeps the view's running set exact)."""
        view = self.views.get(worker_id)
        if view is not None and call_id in view.queued:
            call = view.queued[call_id].call
            view.start(call_id, time.time())
            if call.prefix_key is not None and view.profile.slots == 1:
                # A single llama.cpp instance now holds this prompt, as the simulator assumes from
                # the start of a call; waiting for its end would price the next call cold.
                view.held_prefixes = set(call.prefix_keys)

    def _forget(self, worker_id: str, call_id: str) -> None:
        view = self.views.get(worker_id)
        if view is None:
            return
        if call_id in view.running:
            view.finish(call_id)
        elif call_id in view.queued:
            view.withdraw(call_id)

    def _drop(self, worker_id: str) -> None:
        self.views.pop(worker_id, None)
        self.added.remove(worker_id)

    def _lost(self, worker_id: str) -> None:
        if self.handles.pop(worker_id, None) is not None:
            self._drop(worker_id)
            log.warning("worker %s died; re-dispatching its calls", worker_id, extra={"worker": worker_id})

    async def generate(self, call: Call, request: GenerateRequest) -> Completion:
        """Run `call` on the worker the policies choose; survive worker deaths and re-dispatch."""
        async for chunk in self._place(call, request, streaming=False):
            if chunk.completion is not None:
                return chunk.completion
        raise AssertionError("placing a call always ends with its completion")

    async def stream(self, call: Call, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Like `generate`, yielding text pieces as the worker produces them, then the completion.

        A worker that dies mid-stream is replaced as in `generate`; the new one continues the
        answer after the text already sent (see the module header).
        """
        async for chunk in self._place(call, request, streaming=True):
            yield chunk

    async def _place(self, call: Call, request: GenerateRequest, *, streaming: bool) -> AsyncIterator[Chunk]:
        dispatched = time.time()
        target: str | None = None
        sent = Sent()
        original = (call, request)
        failed: dict[str, str] = {}  # workers whose backend failed this call, and how
        while True:
            if target is None or target not in self.views:
                target = self._choose(call, failed)
            self.views[target].enqueue(call)
            out: Outcome | None = None
            task: Any = None  # the worker's ObjectRef or ObjectRefGenerator, to cancel it
            try:
                if streaming:
                    task = self.handles[target].stream.options(num_returns="streaming").remote(call, request)
                    async for ref in task:
                        item = await ref
                        if isinstance(item, Outcome):
                            out = item
                        else:
                            sent.add(item.text)
                            yield item
                else:
                    task = self.handles[target].run.remote(call, request)
                    out = await task
            except (asyncio.CancelledError, GeneratorExit):
                # Our caller cancelled the call (or stopped reading): cancel it where it is.
                if task is not None:
                    ray.cancel(task)
                self._forget(target, call.id)
                self.redirect.pop(call.id, None)
                raise
            except RayActorError:
                log.warning("worker %s died holding the call; re-dispatching it", target, extra={**call.log_ids(), "worker": target})
                self._lost(target)
                self.redispatched += 1
                self.metrics.redispatched("worker_died")
                sent.worker_died()
                call, request = sent.resume(*original)
                target = None
                continue
            except RayTaskError as exc:
                self._forget(target, call.id)
                if isinstance(exc.cause, SloflowError) and not isinstance(exc.cause, BackendError):
                    raise exc.cause from None  # the call itself is wrong or late: another worker would not help
                # The backend hung, answered garbage or hung up: fail over to a worker not tried yet.
                failed[target] = getattr(exc.cause, "message", None) or repr(exc.cause)
                log.warning("worker %s failed on the call, failing over: %s", target, failed[target], extra={**call.log_ids(), "worker": target})
                self.redispatched += 1
                self.metrics.redispatched("backend_failed")
                sent.worker_died()
                call, request = sent.resume(*original)
                target = None
                continue
            assert out is not None, "a worker always ends a call with its outcome"
            self._forget(target, call.id)
            if target in self.views:
                self.views[target].held_prefixes = set(out.held_prefixes)
            if out.completion is None:  # withdrawn: follow it to the worker it was moved to
                target = self.redirect.pop(call.id, None)
                continue
            now = time.time()
            met = None if call.deadline is None else now <= (call.request_deadline or call.deadline)
            self.metrics.finished(target, call.workflow, now - dispatched, met)
            asyncio.get_running_loop().create_task(self._rebalance(target))
            yield Chunk(completion=sent.merge(out.completion, dispatched))
            return

    def _choose(self, call: Call, failed: dict[str, str]) -> str:
        """The worker for `call` among those whose backend has not failed it yet."""
        left = [v for v in self.views.values() if v.id not in failed]
        if not left:
            if failed:
                raise BackendError(
                    f"call {call.id} failed on every worker that could take it: "
                    + "; ".join(f"{w}: {why}" for w, why in failed.items()),
                    details={"failed": failed},
                )
            raise BackendError("no LLM workers are running; add one with add_worker")
        try:
            return self.scheduler.dispatch.choose(call, eligible(call, left), time.time()).id
        except InvalidRequest:
            if not failed:
                raise
            raise BackendError(f"call {call.id} failed on {sorted(failed)} and no other worker can take it: {failed}") from None

    async def _rebalance(self, worker_id: str) -> None:
        """If `worker_id` has room and nothing queued, move a waiting call from elsewhere to it."""
        if self.scheduler.rebalance is None:
            return
        idle = self.views.get(worker_id)
        if idle is None or idle.queued or idle.draining:
            return
        got = self.scheduler.rebalance.steal(idle, list(self.views.values()), time.time())
        if got is None:
            return
        call, source = got
        self.redirect[call.id] = worker_id
        try:
            moved = await self.handles[source.id].withdraw.remote(call.id)
        except RayActorError:
            moved = False  # the source died: the call's owner re-dispatches it anyway
        if not moved:
            self.redirect.pop(call.id, None)
            return
        self.redispatched += 1
        self.metrics.redispatched("rebalance")


DispatcherActor = ray.remote(Dispatcher)


def start_dispatcher(scheduler: str = DEFAULT, *, alpha: float = 0.5, name: str = DISPATCHER_NAME) -> Any:
    """The named dispatcher actor (created if it does not exist yet); Ray must be started."""
    # On the head node, as Ray pins its own state actors: a worker node that leaves takes its
    # workers with it (their calls are re-dispatched), never the dispatcher.
    return DispatcherActor.options(
        name=name, get_if_exists=True, num_cpus=0, max_concurrency=10_000, max_restarts=0,
        resources={"node:__internal_head__": 0.001},
    ).remote(scheduler, alpha)


def start_scheduler(workers: dict[str, WorkerSpec], scheduler: str = DEFAULT, *, name: str = DISPATCHER_NAME) -> Any:
    """Start (or join) the dispatcher and add the workers not yet in it, one at a time; returns the handle.

    Workers are added one by one so that their profiling passes do not compete for the same cores.
    """
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    for worker_id, spec in workers.items():
        # Ray would wait forever for a node that does not exist; say which worker and what it needs.
        if not any(spec.fits_node(r) for r in nodes):
            raise ConfigError(
                f"no Ray node can hold worker {worker_id!r}, which needs {spec.needs()}; "
                "start a node with those resources (`ray start --resources '{...}'`, --num-gpus) or change the worker"
            )
    dispatcher = start_dispatcher(scheduler, name=name)
    present = {w["id"] for w in ray.get(dispatcher.workers.remote())}
    for worker_id, spec in workers.items():
        if worker_id not in present:
            ray.get(dispatcher.add_worker.remote(worker_id, spec))
    return dispatcher
