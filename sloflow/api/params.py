"""Path parameters as the server accepts them, so the OpenAPI spec says exactly what validation does."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from sloflow.tenancy import KEY_ID_PATTERN, TENANT_PATTERN

# retrieval/names.py: 3-64 letters, digits, '_', '.', '-', starting and ending alphanumeric
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,62}[A-Za-z0-9]$"
RUN_ID_PATTERN = r"^[0-9a-f]{32}$"
WORKFLOW_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
SOURCE_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"

IndexName = Annotated[str, Path(pattern=NAME_PATTERN, description="3-64 letters, digits, '_', '.', '-'", examples=["notes"])]
DatabaseName = Annotated[str, Path(pattern=NAME_PATTERN, description="3-64 letters, digits, '_', '.', '-'", examples=["shop"])]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="a run id: 32 hex digits", examples=["0" * 32])]
WorkflowName = Annotated[str, Path(pattern=WORKFLOW_PATTERN, description="a registered workflow", examples=["text2sql"])]
DocId = Annotated[str, Path(min_length=1, max_length=1000, description="a document id")]
SourceName = Annotated[str, Path(pattern=SOURCE_PATTERN, description="an index, sql:DB, schema:DB or a function")]
TenantName = Annotated[str, Path(pattern=TENANT_PATTERN, description="1-63 lower-case letters, digits, '_', '-'")]
ContextId = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="a context id: 32 hex digits", examples=["0" * 32])]
KeyId = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="a key id: 12 hex digits")]
