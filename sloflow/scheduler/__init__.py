"""HEXGEN-style hierarchical urgency scheduling: pure policies, a Ray dispatcher and workers, a simulator.

Data path: `SchedulerClient` (an `LLMClient`) -> dispatcher actor (global view, dispatch policy,
re-dispatch) -> worker actors (local queue policy, slots, backend). The simulator drives the same
policy objects with modelled workers. Importing this package does not import Ray.
"""

from sloflow.scheduler.call import Call, call_budget
from sloflow.scheduler.policies import DEFAULT, Scheduler, make_scheduler
from sloflow.scheduler.profile import WorkerProfile

__all__ = ["DEFAULT", "Call", "Scheduler", "WorkerProfile", "call_budget", "make_scheduler"]
