"""Evidence for the answer model: each executed call with its provenance, compacted to fit a prompt.

Shared by `reaper` (the executed plan) and `react` (its observations): one answer prompt that asks
for citations by label, and the citations read back from the answer.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sloflow.llm.types import Message

EVIDENCE_CHARS = 2400  # about 900 tokens of JSON over all evidence (2.7 characters a token): the answer prompt's new prefill
_QUOTABLE = 40  # characters: a value longer than this is a passage, not something an answer quotes
_LISTED = 3  # values of a per-item argument written out in an evidence header; longer lists are counted
_CITATION = re.compile(r"\[(var\d+|step\d+)(?:\.[^\]\s]*)?\]")  # [var1], or a field of it: [var1.status]


@dataclass(frozen=True)
class Evidence:
    """One call's output and where it came from."""

    label: str
    source: str
    arguments: dict[str, Any]
    output: Any = None
    error: str | None = None

    def describe(self, chars: int, question: str = "") -> str:
        args = ", ".join(f"{k}={_argument(v, question)}" for k, v in self.arguments.items())
        head = f"[{self.label}] {self.source}({args})"
        if self.error is not None:
            # Worded as the call's fault: a refused argument says nothing about the question's subject.
            return f"{head}: not answered (the call was refused: {self.error[:200]})"
        return f"{head}:\n{compact(self.output, chars, question)}"


def _argument(value: Any, question: str) -> str:
    """An argument as the evidence header shows it. The question, searched with as it is, and the
    ids a step ran over one by one are in the prompt already (the question above, the ids in the
    outputs): written out again they cost about 100 tokens of the answer's prefill on tau2 retail."""
    if isinstance(value, str) and question and value.strip() == question.strip():
        return "(the question)"
    if isinstance(value, list) and len(value) > _LISTED:
        return f"[{len(value)} values: {', '.join(json.dumps(v, ensure_ascii=False) for v in value[:2])}, ...]"
    return json.dumps(value, ensure_ascii=False)


def compact(output: Any, chars: int, question: str = "") -> str:
    """A short text form of an output: search hits as their texts, anything else as JSON, within `chars`.

    JSON over `chars` first loses the entries least related to `question` (`focus`), then its tail.
    """
    if isinstance(output, list) and output and all(isinstance(h, dict) and "text" in h for h in output):
        text = "\n".join(f"- ({h.get('doc_id', '')}) {h['text']}" for h in output)
    elif isinstance(output, str):
        text = output
    else:
        text = _json(focus(output, question, chars) if question else output)
    return text if len(text) <= chars else text[: max(chars - 3, 0)] + "..."


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def focus(output: Any, question: str, chars: int) -> Any:
    """`output` pruned to about `chars` of JSON: from its largest list or object, the entries that
    share the fewest words with `question` go first (the later among equals), until it fits or
    nothing but one entry a collection and short values is left.

    A product's variants, a user's payment methods or an order's items are such collections: the
    question names the variant or item it is about, so what is left is what the answer can use,
    where cutting the text's tail keeps whichever came first. Short values (ids, names, statuses)
    are never dropped. A marker says how many entries went.
    """
    words = {w for w in re.findall(r"[a-z0-9]+", question.casefold()) if len(w) > 2}
    value = copy.deepcopy(output)
    while (excess := len(_json(value)) - chars) > 0:
        node = _largest_collection(value)
        if node is None:
            break
        _drop_least_related(node, words, excess)
    return value


_MARK = "…"  # the marker of dropped entries: a key of an object, or the start of a list's last item


def _marked(value: Any) -> int:
    """How many entries a marker says went (0 for anything that is not a marker)."""
    found = re.fullmatch(r"… (\d+) more", value) if isinstance(value, str) else None
    return int(found.group(1)) if found else 0


def _entries(node: dict[str, Any] | list[Any]) -> dict[Any, str]:
    """The droppable entries of a collection (keys of an object, indexes of a list) with their JSON:
    those longer than a quotable value. Ids, names, statuses and the markers stay."""
    keys = [k for k in node if k != _MARK] if isinstance(node, dict) else range(len(node))
    texts = {k: _json(node[k]) for k in keys}
    return {k: text for k, text in texts.items() if len(text) > _QUOTABLE}


def _largest_collection(value: Any) -> dict[str, Any] | list[Any] | None:
    """The list or object with at least two droppable entries whose JSON is longest, or None."""
    best, size = None, -1
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)):
            stack.extend(node.values() if isinstance(node, dict) else node)
            if len(_entries(node)) >= 2 and (n := len(_json(node))) > size:
                best, size = node, n
    return best


def _drop_least_related(node: dict[str, Any] | list[Any], words: set[str], excess: int) -> None:
    """Drop the entries of `node` least related to `words` until about `excess` characters went (one stays)."""
    entries = _entries(node)
    is_object = isinstance(node, dict)

    def related(key: Any) -> int:
        text = entries[key].casefold() + (f" {key}".casefold() if is_object else "")
        return sum(w in text for w in words)

    dropped, freed = [], 0
    for key in sorted(reversed(entries), key=related)[:-1]:  # fewest shared words first; the later among equals
        if freed >= excess:
            break
        dropped.append(key)
        freed += len(entries[key]) + (len(_json(key)) + 2 if is_object else 1)  # the value, its key and a comma
    if is_object:
        earlier = node.pop(_MARK, None)
    else:
        earlier = node.pop() if node and _marked(node[-1]) else None
    for key in sorted(dropped, reverse=True):  # list indexes from the back, so the others stay put
        del node[key]
    marker = f"{_MARK} {_marked(earlier) + len(dropped)} more"
    if is_object:
        node[_MARK] = marker
    else:
        node.append(marker)


ANSWER_INSTRUCTIONS = (
    "Answer the question from the evidence only. Be brief: one to three sentences. "
    "Cite the evidence you use by its label in brackets, like [var1]. "
    "A call that was not answered tells nothing about the question. "
    "If the evidence does not hold the answer, say what is missing."
)


def answer_messages(
    question: str, evidence: Sequence[Evidence], conversation: Sequence[Message] = (), total_chars: int = EVIDENCE_CHARS
) -> list[Message]:
    """Ask for a short answer from the evidence only, citing the labels it uses.

    After `conversation` (the planner's, which the worker that planned still holds in its prompt
    cache) the instructions come in the last user turn, so only the evidence is new prefill, and
    the worker keeps the planner's instructions and sources cached for the next request. The
    question is in that conversation already and is not written again: on tau2 retail that saved
    about 90 tokens of prefill a request, and the answers stated as much of what the customer must
    be told (bench/RESULTS.md, REAPER).
    """
    each = max(total_chars // max(len(evidence), 1), 200)
    shown = "\n\n".join(e.describe(each, question) for e in evidence) or "(no evidence was gathered)"
    if conversation:
        ask = f"The calls ran. {ANSWER_INSTRUCTIONS} Write prose, not JSON.\n\nEvidence:\n{shown}\n\nAnswer the question asked above."
        return [*conversation, Message(role="user", content=ask)]
    return [Message(role="system", content=ANSWER_INSTRUCTIONS), Message(role="user", content=f"Evidence:\n{shown}\n\nQuestion: {question.strip()}")]


def citations(answer: str, evidence: Sequence[Evidence]) -> list[str]:
    """The labels an answer cites that name a piece of evidence, in order of first citation; when it
    cites none, the evidence whose short values (a status, a name, an id) it quotes.

    A small model often answers from the evidence without the brackets ("the order is delivered");
    the run still says where "delivered" came from.
    """
    known = {e.label for e in evidence}
    cited = list(dict.fromkeys(label for label in _CITATION.findall(answer) if label in known))
    if cited:
        return cited
    said = answer.casefold()
    return [e.label for e in evidence if e.error is None and any(_quoted(v, said) for v in _short_values(e.output))]


def _short_values(output: Any) -> list[str]:
    """The output's string and number leaves short enough to be quoted as they are (not passages)."""
    if isinstance(output, dict):
        return [v for item in output.values() for v in _short_values(item)]
    if isinstance(output, list):
        return [v for item in output for v in _short_values(item)]
    if isinstance(output, (str, int, float)) and not isinstance(output, bool):
        text = str(output).strip()
        return [text] if 4 <= len(text) <= _QUOTABLE else []
    return []


def _quoted(value: str, said: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(value.casefold())}(?![\w])", said) is not None


def fallback_answer(evidence: Sequence[Evidence]) -> str:
    """What a run says when no answer could be written in time: which evidence it gathered."""
    ok = [e for e in evidence if e.error is None]
    if not ok:
        return "The deadline passed before any evidence or answer was ready."
    listed = "; ".join(f"[{e.label}] {e.source}" for e in ok)
    return f"The deadline passed before an answer was written; the evidence gathered so far: {listed}."
