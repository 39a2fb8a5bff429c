"""Sleep-time compute (PAPERS.md section 4): contexts learned on idle capacity before the questions.

    sleeptime.learn   context version -> summary, derived facts, anticipated questions, the likeliest solved by majority vote
    sleeptime         context + question -> a short answer leaning on the learned context, when it is current

`queue.LearnQueue` starts the learn runs, the most likely asked-about context first (`order`).
`followups.ask_followups` writes new questions about a context (the multi-query setting of
`sloflow bench sleeptime`).
"""
