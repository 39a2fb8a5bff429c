"""HEXGEN-style hierarchical urgency scheduling: shared pure policies, a live path on Ray, a simulator.

The package has three parts, and imports run only from live or sim into policies (never back, and
never between live and sim; `tests/scheduler/test_layout.py` checks it):

- `policies/`: what both paths share, without Ray: the `Call` and how an LLM request becomes one
  (`call`), the dispatcher's picture of a worker (`view`), worker profiles and the cost model, and
  how a profile is measured or fitted to GPU tables (`profile`), global dispatch policies
  (`dispatch`), local queue policies (`queueing`) and their named combinations (`scheduler`). The
  policy objects do no I/O and keep no clock: time is passed in.
- `live/`: the path on Ray: `SchedulerClient` (`client`), the dispatcher actor (`dispatcher`),
  one actor per LLM worker (`worker`) and their series in `ray.util.metrics` (`metrics`).
- `sim/`: the discrete-event simulator (`simulator`), workload traces (`traces`), simulated
  experiments such as goodput and capacity (`experiment`), tuning (`tune`), the `sloflow sim` and
  `sloflow tune` commands (`commands`), and `replay`, which sends a trace's requests through a live
  client to measure the simulator's error.

Data path, live: a stage's `ctx.llm` is a `SchedulerClient`; it turns each request into a `Call`
carrying its budget-derived deadline and sends it to the dispatcher actor, which keeps a
`WorkerView` of every worker, filters the eligible ones and lets the dispatch policy pick one
(re-dispatching waiting calls to workers that fall idle, and a dead worker's calls elsewhere).
The worker actor holds the call in its local queue until the queue policy picks it and a slot and
KV-cache room are free, then runs it on its backend. Simulated: requests drawn from a trace arrive
by an arrival process; their calls are released stage by stage with HEXGEN budgets and placed by the
same views and policy objects on workers modelled by their profiles.

Importing this package does not import Ray.
"""

from sloflow.scheduler.policies.call import Call, call_budget
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.scheduler import DEFAULT, Scheduler, make_scheduler

__all__ = ["DEFAULT", "Call", "Scheduler", "WorkerProfile", "call_budget", "make_scheduler"]
