"""Contexts over HTTP: submit one (text, or a registered database), read it with its learned
context's status and amortised cost, replace it (a new version), delete it.

Needs `app.state.contexts` (a `ContextStore`); `app.state.learn_queue` (a started `LearnQueue`)
learns each new version on idle capacity, and `app.state.sources` lets a database be the context.
A tenant sees only its own contexts: another tenant's context id answers 404, as an unknown one.
Questions go to `POST /v1/workflows/sleeptime/runs`, whose calls hold to the tenant's priority cap.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sloflow.api.auth import Caller
from sloflow.api.params import NAME_PATTERN, ContextId
from sloflow.errors import InvalidRequest, PayloadTooLarge
from sloflow.llm.types import approx_tokens
from sloflow.tenancy import Principal
from sloflow.workflows.contexts import Context, ContextSource, ContextStore, LearnStatus

router = APIRouter(prefix="/v1/contexts", tags=["contexts"])

MAX_CONTEXT_CHARS = 200_000
PRIORITY_MAX = 10


class ContextIn(BaseModel):
    """A context: its text, or a registered database whose schema and value samples become the text."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    text: str | None = Field(None, min_length=1, max_length=MAX_CONTEXT_CHARS, description="the context itself, e.g. a document")
    database: str | None = Field(
        None, pattern=NAME_PATTERN, description="a registered database (POST /v1/databases): its schema and sample values are the context"
    )
    priority: int | None = Field(
        None, ge=0, le=PRIORITY_MAX,
        description=f"0-{PRIORITY_MAX}: how soon it is learned, counted as that many recent questions; default 0 (a PUT keeps the current one)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ContextIn:
        if (self.text is None) == (self.database is None):
            raise ValueError("give exactly one of `text` (the context) or `database` (a registered database's name)")
        if self.text is not None and not self.text.strip():
            raise ValueError("`text` is only whitespace; send the context's text")
        return self


class WorkedQuestion(BaseModel):
    """An anticipated question; once solved, its working, majority result and the share of samples that agreed."""

    question: str
    answer: str | None = Field(None, description="the working of a sample that reached the result")
    result: float | None = Field(None, description="the final number most samples reached")
    agreement: float | None = Field(None, description="the share of samples that reached it")


class LearnedOut(BaseModel):
    """The learn pass of the context's current version; the learned context once `ready`."""

    version: int = Field(description="the context version it is for: always the current one")
    status: LearnStatus = Field(description="queued (waiting for idle capacity), running, ready or failed")
    run_id: str | None = Field(description="the sleeptime.learn run (GET /v1/runs/{run_id})")
    updated_at: float
    tokens: int = Field(description="tokens the pass generated")
    error: str | None
    summary: str | None = None
    facts: list[str] = Field(default_factory=list)
    quantities: str = Field("", description="the context's quantities as Python assignments that evaluate (what compute=true answers over)")
    questions: list[WorkedQuestion] = Field(default_factory=list, description="anticipated questions, the likeliest solved in advance")


class AmortisedOut(BaseModel):
    """What learning the context cost per question answered against it (all versions)."""

    learn_tokens: int
    questions_served: int
    learn_tokens_per_question: float | None = Field(description="learn_tokens / questions_served; null before the first question")


class ContextOut(BaseModel):
    """A context at its current version."""

    id: str
    version: int
    source: ContextSource
    database: str | None
    text: str | None = Field(description="the context (left out of lists)")
    chars: int
    priority: int
    created_at: float
    updated_at: float
    learned: LearnedOut | None
    amortised: AmortisedOut

    @classmethod
    def of(cls, c: Context, with_text: bool = True) -> ContextOut:
        learned = None
        if c.learned is not None:
            lc = c.learned
            content = lc.content
            learned = LearnedOut(
                version=lc.version, status=lc.status, run_id=lc.run_id, updated_at=lc.updated_at, tokens=lc.tokens, error=lc.error,
                summary=content.summary if content else None,
                facts=content.facts if content else [],
                quantities=content.quantities if content else "",
                questions=[WorkedQuestion(**q) for q in content.questions] if content else [],
            )
        per_question = c.learn_tokens / c.questions if c.questions else None
        return cls(
            id=c.id, version=c.version, source=c.source, database=c.database, text=c.text if with_text else None, chars=len(c.text),
            priority=c.priority, created_at=c.created_at, updated_at=c.updated_at, learned=learned,
            amortised=AmortisedOut(learn_tokens=c.learn_tokens, questions_served=c.questions, learn_tokens_per_question=per_question),
        )


class ContextList(BaseModel):
    """Contexts, newest first, without their text."""

    contexts: list[ContextOut]


_LINKS = {
    name: {"operationId": op, "parameters": {"context_id": "$response.body#/id"}}
    for name, op in (("GetContext", "get_context"), ("ReplaceContext", "replace_context"), ("DeleteContext", "delete_context"))
}


def _store(request: Request) -> ContextStore:
    return request.app.state.contexts


def _context_text(request: Request, caller: Principal, body: ContextIn) -> tuple[str, ContextSource]:
    """The text to keep, from the body or the database it names; refused if the model could not hold it."""
    if body.database is not None:
        sources = getattr(request.app.state, "sources", None)
        if sources is None:
            raise InvalidRequest("this server has no databases; send the context as `text`")
        from sloflow.workflows.builtin.sleeptime.prompts import database_context

        text, source = database_context(sources.of(caller.tenant).databases.get(body.database)), "database"
    else:
        assert body.text is not None
        text, source = body.text, "text"
    context_tokens = getattr(request.app.state, "context_tokens", None)
    if context_tokens is not None and approx_tokens(text) > context_tokens // 2:
        what = f"database {body.database!r} as a context (schema and samples)" if body.database else "the context"
        raise PayloadTooLarge(
            f"{what} is about {approx_tokens(text)} tokens; the served model holds {context_tokens}, and a context may take "
            f"half of that ({context_tokens // 2}, about {context_tokens * 2} characters) to leave room for its learned "
            "context and the question; send a shorter one, or split it into several contexts",
            details={"tokens": approx_tokens(text), "max_tokens": context_tokens // 2},
        )
    return text, source  # type: ignore[return-value]


def _learn(request: Request) -> Any:
    return getattr(request.app.state, "learn_queue", None)


@router.post("", status_code=201, operation_id="create_context", responses={201: {"description": "the context, its learn pass queued", "links": _LINKS}})
async def create_context(body: ContextIn, request: Request, caller: Caller) -> ContextOut:
    """Submit a context; it is learned in the background (sleeptime.learn) on idle capacity."""
    text, source = _context_text(request, caller, body)
    context = _store(request).create(caller.tenant, text, source=source, database=body.database, priority=body.priority or 0)
    queue = _learn(request)
    if queue is not None:
        queue.wake()
    return ContextOut.of(context)


@router.get(
    "",
    operation_id="list_contexts",
    responses={200: {"description": "the contexts", "links": {"GetContext": {"operationId": "get_context", "parameters": {"context_id": "$response.body#/contexts/0/id"}}}}},
)
async def list_contexts(request: Request, caller: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ContextList:
    """The caller's contexts, newest first, without their text."""
    return ContextList(contexts=[ContextOut.of(c, with_text=False) for c in _store(request).contexts(caller.tenant, limit)])


@router.get("/{context_id}", operation_id="get_context")
async def get_context(context_id: ContextId, request: Request, caller: Caller) -> ContextOut:
    """The context, its learned context's status (and content once ready) and its amortised learn cost."""
    return ContextOut.of(_store(request).get(context_id, caller.tenant))


@router.put("/{context_id}", operation_id="replace_context")
async def replace_context(context_id: ContextId, body: ContextIn, request: Request, caller: Caller) -> ContextOut:
    """Replace the context (a new version): its learned context is dropped and learned anew."""
    store = _store(request)
    store.get(context_id, caller.tenant)  # 404 before the database is read
    text, source = _context_text(request, caller, body)
    context, overtaken = store.replace(context_id, caller.tenant, text, source=source, database=body.database, priority=body.priority)
    queue = _learn(request)
    if queue is not None:
        await queue.overtaken(overtaken)
    return ContextOut.of(context)


@router.delete("/{context_id}", status_code=204, operation_id="delete_context")
async def delete_context(context_id: ContextId, request: Request, caller: Caller) -> Response:
    """Delete the context and its learned context (a learn pass in progress is cancelled)."""
    overtaken = _store(request).delete(context_id, caller.tenant)
    queue = _learn(request)
    if queue is not None:
        await queue.overtaken(overtaken)
    return Response(status_code=204)
