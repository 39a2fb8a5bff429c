"""The live scheduler on Ray: the client stages call, the dispatcher actor, worker actors, metrics."""
