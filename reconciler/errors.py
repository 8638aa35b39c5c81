"""The error tree. Only the CLI catches these (one error boundary) and maps them to exit codes.

Every error carries a one-line summary (``str(err)``) and an optional ``hint`` that tells the
user what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ReconcilerError(Exception):
    """Base class of every error the tool raises on purpose."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class UsageError(ReconcilerError):
    """The command line or the environment is wrong (exit 64)."""


@dataclass(frozen=True, order=True)
class Diagnostic:
    """A problem found in the manifests: where it is, a stable code tests match on, what is
    wrong and (``hint``) what to write instead. Sorted by file, line, column, code."""

    file: str
    line: int
    column: int
    code: str
    message: str
    path: str = ""
    severity: str = "error"  # or "warning"
    hint: str = field(default="", compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @classmethod
    def at(cls, source: Any, code: str, message: str, path: str = "", *, severity: str = "error", hint: str = "",
           column: int | None = None) -> Diagnostic:
        """A diagnostic about a manifest document, at ``source`` (a ``SourceRef``: file and line; the
        column is 1 where there is a line, else 0)."""
        line = int(getattr(source, "line", 0) or 0)
        return cls(str(getattr(source, "file", "") or ""), line, (1 if line else 0) if column is None else column,
                   code, message, path, severity, hint)

    def to_dict(self) -> dict[str, Any]:
        """The one serialised form (validate's JSON, plan files, reports)."""
        return {"file": self.file, "line": self.line, "column": self.column, "code": self.code, "severity": self.severity,
                "message": self.message, "path": self.path, "hint": self.hint}

    @classmethod
    def from_dict(cls, data: Any) -> Diagnostic:
        return cls(str(data.get("file", "")), int(data.get("line", 0)), int(data.get("column", 0)), str(data["code"]),
                   str(data["message"]), str(data.get("path", "")), str(data.get("severity", "error")),
                   str(data.get("hint", "")))


class PlanStaleError(ReconcilerError):
    """A saved plan no longer describes the tenant: something it touches has moved since."""

    hint = "Run `reconciler plan --out plan.json` again, review it, then apply the new plan."

    def __init__(self, moved: list[str]) -> None:
        self.moved = moved
        listed = "; ".join(moved[:10]) + (f"; and {len(moved) - 10} more" if len(moved) > 10 else "")
        super().__init__(f"the saved plan is stale, nothing was applied: {listed}")


class ManifestError(ReconcilerError):
    """The manifests have errors; nothing was sent to the tenant."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        files = len({d.file for d in errors})
        super().__init__(
            f"{len(errors)} error{'s' if len(errors) != 1 else ''} in {files} file{'s' if files != 1 else ''}; "
            "nothing was sent to the tenant",
            hint="Fix the problems listed above and run `reconciler validate` again.",
        )


@dataclass(frozen=True)
class FieldError:
    """One field-level problem reported by the server, e.g. an input that fails the contract."""

    location: str
    message: str
    kind: str = ""


class ApiError(ReconcilerError):
    """The tenant answered with an error status, or could not be reached.

    Carries the HTTP status (``None`` when no answer came), the method and URL of the call, the
    server's own message and error code, and any field-level errors it listed.

    ``outcome_unknown``: the request was not idempotent and failed after it may have reached the
    tenant (no answer after sending, or a 5xx), so the tenant may have performed it; it was not
    repeated. The caller must find out (look the object up) before sending it again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        method: str,
        url: str,
        code: Any = None,
        field_errors: tuple[FieldError, ...] = (),
        body: Any = None,
        hint: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.server_message = message
        self.code = code
        self.field_errors = tuple(field_errors)
        self.body = body
        self.outcome_unknown = outcome_unknown
        where = f"{method} {url}"
        prefix = f"HTTP {status}" if status is not None else "no answer"
        summary = f"{prefix} from {where}: {message}"
        if outcome_unknown:
            summary += "; the tenant may have acted on it"
            if hint is None:
                hint = ("It was not sent again, so that it is never done twice; "
                        "run `reconciler plan` to see whether it took effect.")
        super().__init__(summary, hint=hint)


class AuthenticationError(ApiError):
    hint = "Check ATLAN_API_KEY: the tenant rejected the token (expired, revoked, or for another tenant)."


class PermissionDeniedError(ApiError):
    hint = "The API token lacks the permission for this call; ask a tenant admin to grant it."


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class InvalidRequestError(ApiError):
    pass


class RateLimitedError(ApiError):
    hint = "The tenant kept throttling after every retry; lower --parallelism or try again later."


class ServerError(ApiError):
    pass


class ApiConnectionError(ApiError):
    hint = "Check ATLAN_BASE_URL and the network; the call was retried before giving up."


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
    429: RateLimitedError,
}


def api_error_class(status: int) -> type[ApiError]:
    """The typed ApiError leaf for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ApiError

