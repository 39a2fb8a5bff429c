"""LLM-backed planners: retrieval plans, SQL candidates, speculative queries, gate puzzles."""
