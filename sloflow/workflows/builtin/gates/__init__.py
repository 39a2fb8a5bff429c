"""Reasoning gates (PAPERS.md section 5): a bank of puzzles that throttle automated clients.

    gates.fill   one gate: hidden word, clues written and checked, solved and labelled, into the bank

`bank.GateBank` keeps the gates (answers only as keyed hashes); `filler.GateFiller` tops the bank
up on idle capacity when it runs low. The API side is `sloflow.api.gatekeeper`.
"""
