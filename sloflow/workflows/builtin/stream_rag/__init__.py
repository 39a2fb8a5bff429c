"""Streaming RAG (PAPERS.md section 3): retrieval and prompt prefill that start before the user finishes typing.

    listen (revisions; speculative retrievals by a trigger policy; speculative prefill)
      -> retrieve (the final query; a speculative result reused only on an identical top-k)
      -> answer (streamed token by token, only now)

`turn` holds a run's incoming revisions (the API's `POST /v1/runs/{id}/input` feeds it),
`triggers` decides when to fire a speculative retrieval, `speculation` keeps the speculative
work and its cancel rules, `prompts` lays out the answer prompt so that what changes last comes last.
"""
