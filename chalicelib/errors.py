"""Domain errors: each carries an error code and an HTTP status.

Services raise these; app.py maps them to `{"error": {"code", "message"}}` in
one place. Messages are written for the API client and never carry secrets.
"""
from __future__ import annotations

from typing import Dict, Optional


class TesseraError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: Optional[str] = None,
                 status: Optional[int] = None,
                 headers: Optional[Dict[str, str]] = None,
                 details: Optional[dict] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.details = dict(details or {})

    def to_body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        error.update(self.details)
        return {"error": error}


class BadRequest(TesseraError):
    status = 400
    code = "invalid_request"


class PayloadTooLarge(TesseraError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(TesseraError):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(TesseraError):
    status = 401
    code = "unauthorized"


class InvalidCredentials(TesseraError):
    status = 401
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("The tenant, email or password is not valid.")


class Forbidden(TesseraError):
    status = 403
    code = "forbidden"


class NotFound(TesseraError):
    status = 404
    code = "not_found"


class Conflict(TesseraError):
    status = 409
    code = "conflict"


class TooManyRequests(TesseraError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: Optional[str] = None,
                 details: Optional[dict] = None) -> None:
        super().__init__(message, code=code, details=details,
                         headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = max(1, int(retry_after))


class PaymentRequired(TesseraError):
    status = 402
    code = "budget_exceeded"


class UpstreamError(TesseraError):
    """The model service failed: 502 upstream_error by default; overload and timeouts say so."""

    status = 502
    code = "upstream_error"


class ConfigurationError(TesseraError):
    status = 500
    code = "configuration_error"


# --- what a refusal tells a client about retrying, by code -------------------------------------------

# Refusals that no retry cures soon: a monthly quota or a hard budget holds until the month ends, a plan,
# a role, a suspension or a stored key changes only when someone acts, and a login lock-out lasts its
# window. Their responses say `x-should-retry: false` (which the official SDK obeys before any Retry-After:
# it would otherwise sleep for a Retry-After of up to 60 s, or back off and retry a 429 or 5xx twice) and
# carry no Retry-After; when things change is in the body.
NOT_RETRYABLE = frozenset({
    "feature_limit_reached", "budget_exceeded", "feature_not_in_plan", "insufficient_role", "tenant_mismatch",
    "principal_limit_reached", "principal_budget_exceeded",
    "unauthorized", "token_expired", "invalid_credentials", "too_many_attempts",
    "tenant_api_key_unavailable", "tenant_api_key_invalid", "configuration_error",
})

# Refusals that last until the billing month ends; their body names that moment as `resets_at`.
UNTIL_PERIOD_END = frozenset({"feature_limit_reached", "budget_exceeded", "principal_limit_reached",
                              "principal_budget_exceeded"})

# Everything else that may be retried carries Retry-After only where waiting it out helps within a minute:
# `rate_limited` (the tenant's minute ends), `upstream_rate_limited` (the model service's own hint).
