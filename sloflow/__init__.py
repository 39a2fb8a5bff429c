"""sloflow: agentic LLM workflows under latency SLOs."""
