"""Sleep-time compute (PAPERS.md section 4): contexts learned on idle capacity before the questions.

    sleeptime.learn   context version -> summary, derived facts, anticipated questions, the likeliest solved by majority vote
    sleeptime         context + question -> the result solved in advance when the question is one the learn pass solved, else step by step

`queue.LearnQueue` starts the learn runs, the most likely asked-about context first (`order`).
`followups.ask_followups` writes new questions about a context (the multi-query setting of
`sloflow bench sleeptime`).
"""
