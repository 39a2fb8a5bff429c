"""The Text-to-SQL planner: prompts, SQL extraction, schema linking, name repair, candidate selection."""
