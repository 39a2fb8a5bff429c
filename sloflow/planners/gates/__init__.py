"""Reasoning-gate puzzles: words, domains, clue and solver prompts (PAPERS.md section 5)."""
