"""One exception hierarchy for sloflow; the API maps it to HTTP responses in one place."""

from __future__ import annotations

from typing import Any


class SloflowError(Exception):
    """Base error: `message` says what went wrong and what to fix; `details` is JSON-safe."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRequest(SloflowError):
    """The caller sent something malformed or out of range."""

    status_code = 400
    code = "invalid_request"


class Unauthorized(SloflowError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401
    code = "unauthorized"


class Forbidden(SloflowError):
    """The key is valid but its role or plan does not allow this."""

    status_code = 403
    code = "forbidden"


class PayloadTooLarge(SloflowError):
    """The request body is larger than the server accepts."""

    status_code = 413
    code = "payload_too_large"


class QuotaExceeded(SloflowError):
    """A tenant is over one of its quotas; `retry_after_s` says when to try again."""

    status_code = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={**(details or {}), "retry_after_s": round(retry_after_s, 3)})
        self.retry_after_s = retry_after_s


class NotFound(SloflowError):
    """A named thing (model, workflow, run, index, database) does not exist."""

    status_code = 404
    code = "not_found"


class Conflict(SloflowError):
    """The request is valid but clashes with the current state (e.g. a finished run)."""

    status_code = 409
    code = "conflict"


class ConfigError(SloflowError):
    """Settings or a definition are invalid; raised at start-up or definition time."""

    status_code = 500
    code = "config_error"


class ModelUnavailable(SloflowError):
    """An embedded model is not installed or failed verification."""

    status_code = 503
    code = "model_unavailable"


class BackendError(SloflowError):
    """An LLM backend failed (unreachable endpoint, garbage answer, generation error)."""

    status_code = 502
    code = "backend_error"


class OutputTruncated(BackendError):
    """A constrained answer was cut by `max_tokens` before it was complete."""

    code = "output_truncated"


class StorageError(SloflowError):
    """Durable state (runs, events, checkpoints) cannot be written: a full or read-only disk."""

    status_code = 503
    code = "storage_unavailable"


class DeadlineExceeded(SloflowError):
    """A call or run could not finish before its deadline."""

    status_code = 504
    code = "deadline_exceeded"


class Cancelled(SloflowError):
    """The run or call was cancelled by its owner."""

    status_code = 409
    code = "cancelled"


class UnsafeSql(SloflowError):
    """The SQL guard refused a statement; the message says which rule and why."""

    status_code = 400
    code = "unsafe_sql"


class GateRequired(SloflowError):
    """The route asks this key to solve a reasoning gate first; `details.gate` is the challenge.

    401 when the route always gates or the server is loaded, 429 when the key's own request rate
    is what crossed the threshold.
    """

    code = "gate_required"

    def __init__(self, message: str, *, rate_driven: bool, details: dict[str, Any]) -> None:
        super().__init__(message, details=details)
        self.status_code = 429 if rate_driven else 401


class WrongAnswer(SloflowError):
    """A gate was answered wrongly; the gate is used up and the key's next gates are harder."""

    status_code = 403
    code = "wrong_answer"


class GateBankEmpty(QuotaExceeded):
    """A gate is required but none is left to issue: back off (429, Retry-After) while the bank refills."""

    code = "gate_bank_empty"
