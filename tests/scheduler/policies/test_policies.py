"""Dispatch and queue policies on hand-built worker views: pure, no Ray, no clock."""

from __future__ import annotations

import pytest

from sloflow.errors import InvalidRequest
from sloflow.llm.client import CallContext
from sloflow.llm.types import GenerateRequest, Message
from sloflow.scheduler.policies.call import Call, call_budget, to_call
from sloflow.scheduler.policies.dispatch import (
    EarliestFinish,
    HexgenBalance,
    LeastHarm,
    LeastOutstanding,
    Rebalancer,
    RoundRobin,
    SlackAwareFinish,
    added_delay_s,
    eligible,
)
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.queueing import EarliestDeadline, Fcfs, LeastSlack, TriagedDeadline, next_call
from sloflow.scheduler.policies.view import PREEMPT_S, WorkerView

FAST = WorkerProfile("fast", prefill_s_per_token=0.001, decode_s_per_token=0.01, slots=1, context_tokens=4096)
SLOW = WorkerProfile("slow", prefill_s_per_token=0.002, decode_s_per_token=0.02, slots=1, context_tokens=4096)


def call(i: int | str, prompt: int = 100, output: int = 10, release: float = 0.0, deadline: float | None = 100.0, **kw) -> Call:
    return Call(id=str(i), prompt_tokens=prompt, output_tokens=output, release=release, deadline=deadline, **kw)


def test_budget_is_the_stage_share_of_the_remaining_time() -> None:
    assert call_budget(10.0, 1.0, [2.0, 1.0]) == pytest.approx(2.5)
    assert call_budget(-1.0, 1.0, [2.0]) == 0.0  # a late request's calls become the most urgent


def test_filter_refuses_draining_wrong_model_and_too_long_calls() -> None:
    a = WorkerView("a", FAST, model="m1")
    b = WorkerView("b", FAST, model="m2", draining=True)
    assert eligible(call(1, model="m1"), [a, b]) == [a]
    with pytest.raises(InvalidRequest, match="no worker"):
        eligible(call(2, prompt=5000), [a])


def test_round_robin_and_least_outstanding_spread_calls() -> None:
    views = [WorkerView("a", FAST), WorkerView("b", FAST)]
    rr = RoundRobin()
    assert {rr.choose(call(i), views, 0).id for i in range(2)} == {"a", "b"}
    views[0].enqueue(call("q"))
    assert LeastOutstanding().choose(call(3), views, 0).id == "b"


def test_earliest_finish_prefers_the_fast_worker_until_its_queue_costs_more() -> None:
    fast, slow = WorkerView("fast", FAST), WorkerView("slow", SLOW)
    assert EarliestFinish().choose(call(1), [fast, slow], 0).id == "fast"
    for i in range(3):
        fast.enqueue(call(f"q{i}"))
    fast.start("q0", 0.0)
    assert EarliestFinish().choose(call(2), [fast, slow], 0).id == "slow"


def test_slack_aware_finish_counts_only_the_queued_work_served_first() -> None:
    fast, slow = WorkerView("fast", FAST), WorkerView("slow", SLOW)
    fast.enqueue(call("running"))
    fast.start("running", 0.0)
    for i in range(5):  # a queue of calls due much later: an urgent call jumps it
        fast.enqueue(call(f"lazy{i}", deadline=1000.0))
    urgent = call("urgent", deadline=1.0)
    assert EarliestFinish().choose(urgent, [fast, slow], 0).id == "slow"
    assert SlackAwareFinish().choose(urgent, [fast, slow], 0).id == "fast"


def test_slack_aware_finish_counts_the_prefix_a_worker_holds() -> None:
    cold, warm = WorkerView("cold", FAST), WorkerView("warm", FAST, held_prefixes={"sys"})
    c = call(1, prompt=2000, output=5, prefix_key="sys", prefix_tokens=1800)
    assert SlackAwareFinish().choose(c, [cold, warm], 0).id == "warm"
    assert warm.solo_s(c) < cold.solo_s(c) / 3


def guess(*passages: str) -> Call:
    """A call whose system message lists `passages` (400 characters each), placed under a prefix key."""
    system = "Answer from the evidence.\n" + "\n".join(p * 400 for p in passages)
    request = GenerateRequest(messages=[Message(role="system", content=system), Message(role="user", content="Which?")], max_tokens=1)
    return to_call(request, CallContext(deadline=100.0, prefix_key="".join(passages)), now=0.0)


def test_a_partly_held_prefix_counts_up_to_its_first_changed_block() -> None:
    prefilled, final = guess("a", "b", "c", "d"), guess("a", "b", "x", "d")
    assert prefilled.prefix_key != final.prefix_key
    shared = sum(1 for x, y in zip(prefilled.prefix_blocks, final.prefix_blocks) if x == y)
    assert 0 < shared < len(final.prefix_blocks) and prefilled.prefix_blocks[:shared] == final.prefix_blocks[:shared]
    warm, cold = WorkerView("warm", FAST, held_prefixes=set(prefilled.prefix_keys)), WorkerView("cold", FAST)
    assert cold.cached_tokens(final) == 0
    assert 0 < warm.cached_tokens(final) < final.prefix_tokens == warm.cached_tokens(prefilled)
    assert LeastHarm().choose(final, [cold, warm], 0).id == "warm"


def test_a_speculative_prefill_follows_its_prefix_past_the_prefill_it_replaces() -> None:
    old, new = guess("a", "b", "c", "d"), guess("a", "b", "c", "x")
    old.deadline = new.deadline = None
    new.warms_cache = True
    warm, idle = WorkerView("warm", FAST), WorkerView("idle", FAST)
    warm.enqueue(old)
    warm.start(old.id, 0.0)  # still running: it is being cancelled as the guess changed
    warm.held_prefixes = set(old.prefix_keys)
    assert LeastHarm().choose(new, [idle, warm], 0).id == "warm"
    new.warms_cache = False  # other background work goes to the least loaded worker
    assert LeastHarm().choose(new, [idle, warm], 0).id == "idle"


def test_slack_aware_finish_sees_a_full_kv_cache_where_slots_are_free() -> None:
    small = WorkerProfile("small-kv", 0.001, 0.01, slots=8, context_tokens=4096, kv_tokens=4096)
    big = WorkerProfile("big-kv", 0.0012, 0.012, slots=8, context_tokens=4096, kv_tokens=32768)
    a, b = WorkerView("a", small), WorkerView("b", big)
    a.enqueue(call("r", prompt=3000, output=100))
    a.start("r", 0.0)
    c = call("new", prompt=3000, output=100)
    assert not a.has_room(c)
    assert SlackAwareFinish().choose(c, [a, b], 0).id == "b"


def test_calls_of_a_lost_request_go_to_the_least_loaded_worker() -> None:
    fast, slow = WorkerView("fast", FAST), WorkerView("slow", SLOW)
    fast.enqueue(call("x"))
    lost = call("lost", prompt=1000, output=100, deadline=0.5, request_deadline=0.5)  # 2 s of work: too late
    assert SlackAwareFinish().choose(lost, [fast, slow], 0).id == "slow"
    assert LeastHarm().choose(lost, [fast, slow], 0).id == "slow"


BATCHED_FAST = WorkerProfile("fast-b", 0.001, 0.01, decode_slowdown=0.05, slots=8, context_tokens=4096)
BATCHED_SLOW = WorkerProfile("slow-b", 0.002, 0.02, decode_slowdown=0.05, slots=8, context_tokens=4096)


def busy_fast_and_idle_slow() -> tuple[WorkerView, WorkerView]:
    fast, slow = WorkerView("fast", BATCHED_FAST), WorkerView("slow", BATCHED_SLOW)
    for i in range(3):  # three long calls share the fast worker
        fast.enqueue(call(f"r{i}", output=500))
        fast.start(f"r{i}", 0.0)
    return fast, slow


def test_least_harm_sends_a_call_with_time_to_spare_where_it_slows_no_running_call() -> None:
    fast, slow = busy_fast_and_idle_slow()
    c = call("new", deadline=100.0)  # 0.23 s on the busy fast worker, 0.4 s on the idle slow one
    assert added_delay_s(fast, c, 0.0, 0.23) == pytest.approx(3 * 0.23 * (1.15 / 1.10 - 1))  # 3 calls, 0.23 s overlap
    assert added_delay_s(slow, c, 0.0, 0.4) == 0.0
    assert EarliestFinish().choose(c, [fast, slow], 0).id == "fast"
    assert LeastHarm().choose(c, [fast, slow], 0).id == "slow"


def test_least_harm_keeps_a_short_of_time_call_where_it_meets_its_deadline() -> None:
    fast, slow = busy_fast_and_idle_slow()
    assert LeastHarm().choose(call("tight", deadline=0.35), [fast, slow], 0).id == "fast"  # only the fast one fits
    assert LeastHarm().choose(call("late", deadline=0.1), [fast, slow], 0).id == "fast"  # none fits: earliest finish


PREFILLER = WorkerProfile("prefiller", prefill_s_per_token=0.001, decode_s_per_token=0.04, slots=1, context_tokens=4096)
DECODER = WorkerProfile("decoder", prefill_s_per_token=0.004, decode_s_per_token=0.01, slots=1, context_tokens=4096)


def test_least_harm_waits_for_the_worker_a_call_is_cheapest_on_while_its_deadline_allows() -> None:
    prefiller, decoder = WorkerView("prefiller", PREFILLER), WorkerView("decoder", DECODER)
    decoder.enqueue(call("running", prompt=10, output=96))
    decoder.start("running", 0.0)  # busy for 1.0 s
    talky = call("talky", prompt=10, output=20)  # 0.24 s on the decoder (ends at 1.24 s), 0.81 s on the idle prefiller
    assert EarliestFinish().choose(talky, [prefiller, decoder], 0).id == "prefiller"
    assert LeastHarm().choose(talky, [prefiller, decoder], 0).id == "decoder"
    urgent = call("urgent", prompt=10, output=20, deadline=1.3)  # waiting for the decoder would leave no room
    assert LeastHarm().choose(urgent, [prefiller, decoder], 0).id == "prefiller"


def test_hexgen_alpha_trades_speed_against_cumulative_load() -> None:
    fast, slow = WorkerView("fast", FAST), WorkerView("slow", SLOW)
    fast.enqueue(call("first"))
    fast.withdraw("first")  # cumulative work stays: HEXGEN never decrements it
    assert HexgenBalance(alpha=1.0).choose(call(1), [fast, slow], 0).id == "fast"
    assert HexgenBalance(alpha=0.0).choose(call(1), [fast, slow], 0).id == "slow"


def test_deadline_calls_always_go_before_background_calls() -> None:
    w = WorkerView("w", FAST)
    w.enqueue(call("bg", release=0.0, deadline=None))
    w.enqueue(call("late", release=5.0, deadline=500.0))
    for policy in (Fcfs(), EarliestDeadline(), LeastSlack(), TriagedDeadline()):
        assert next_call(w, policy, 10.0).id == "late"
    w.withdraw("late")
    assert next_call(w, Fcfs(), 10.0).id == "bg"


def test_queue_orders() -> None:
    w = WorkerView("w", FAST)
    w.enqueue(call("early-long", prompt=3000, release=0.0, deadline=5.0))  # 3.1 s of work: slack 1.9
    w.enqueue(call("soon-short", prompt=10, output=1, release=1.0, deadline=4.0))  # slack ~4
    assert next_call(w, Fcfs(), 0).id == "early-long"
    assert next_call(w, EarliestDeadline(), 0).id == "soon-short"
    assert next_call(w, LeastSlack(), 0).id == "early-long"


def test_triaged_slack_serves_requests_that_can_still_make_it_first() -> None:
    w = WorkerView("w", FAST)
    w.enqueue(call("hopeless", deadline=1.0, request_deadline=1.0))
    w.enqueue(call("feasible", deadline=10.0, request_deadline=10.0))
    assert next_call(w, LeastSlack(), 2.0).id == "hopeless"
    assert next_call(w, TriagedDeadline(), 2.0).id == "feasible"


def test_rebalancer_moves_the_most_urgent_waiting_call_to_an_idle_worker() -> None:
    busy, idle = WorkerView("busy", FAST), WorkerView("idle", FAST)
    busy.enqueue(call("running", output=500))
    busy.start("running", 0.0)
    busy.enqueue(call("relaxed", deadline=100.0))
    busy.enqueue(call("urgent", deadline=3.0))
    got = Rebalancer().steal(idle, [busy, idle], 0.0)
    assert got is not None and got[0].id == "urgent" and got[1] is busy
    assert Rebalancer().steal(busy, [busy, idle], 0.0) is None  # nothing waits elsewhere


def running_background(worker: WorkerView, seconds_of_output: int) -> None:
    """`worker` runs one long background call (and queues another): work a deadline call preempts."""
    worker.enqueue(call("bg-running", output=seconds_of_output * 100, deadline=None))
    worker.start("bg-running", 0.0)
    worker.enqueue(call("bg-queued", output=seconds_of_output * 100, deadline=None))


def test_a_deadline_call_sees_a_worker_running_only_background_work_as_nearly_idle() -> None:
    fast, also_fast = WorkerView("fast", FAST), WorkerView("also-fast", FAST)
    running_background(fast, 60)  # a minute of background work there
    also_fast.enqueue(call("short", output=100))  # one second of deadline work here
    also_fast.start("short", 0.0)
    c = call("new", deadline=5.0)
    idle_finish = SlackAwareFinish.finish_s(c, WorkerView("idle", FAST), 0.0)
    assert SlackAwareFinish.finish_s(c, fast, 0.0) == pytest.approx(idle_finish + PREEMPT_S)
    assert added_delay_s(fast, c, 0.0, idle_finish) == 0.0  # a background call has no deadline to miss
    for policy in (EarliestFinish(), SlackAwareFinish(), LeastHarm()):
        assert policy.choose(c, [also_fast, fast], 0.0).id == "fast", policy.name
    also_fast.enqueue(c)  # waiting behind deadline work: the worker busy only with background work takes it over
    got = Rebalancer().steal(fast, [also_fast, fast], 0.0)
    assert got is not None and got[0].id == "new"


def test_a_background_call_still_waits_for_all_running_work() -> None:
    w = WorkerView("w", FAST)
    running_background(w, 60)
    bg = call("bg-new", deadline=None)
    assert not w.has_room_preempting(bg)
    assert LeastOutstanding().choose(bg, [w, WorkerView("idle", FAST)], 0.0).id == "idle"
    assert LeastHarm().choose(bg, [w, WorkerView("idle", FAST)], 0.0).id == "idle"


def test_deadline_work_counts_only_the_queued_deadline_calls() -> None:
    view = WorkerView("w", FAST)
    view.enqueue(Call("d", 100, 10, 0.0, deadline=5.0))
    view.enqueue(Call("b", 100, 10, 0.0))
    assert view.deadline_work_s() == pytest.approx(view.queued["d"].work_s) and 0 < view.deadline_work_s() < view.queued_work_s
