"""Errors a user can act on; the API maps each to a 4xx JSON response by its ``status``."""


class UserError(Exception):
    """Bad input: the message says what is wrong and how to fix it."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict:
        body = {"error": self.message}
        if self.field:
            body["field"] = self.field
        return body


class NotFoundError(UserError):
    status = 404


class ConflictError(UserError):
    status = 409


class PayloadTooLargeError(UserError):
    status = 413


class UnauthorizedError(UserError):
    status = 401


class ForbiddenError(UserError):
    status = 403


class BusyError(UserError):
    """A shared resource is busy right now; the same request succeeds when tried again soon."""

    status = 503


class TooManyRequestsError(UserError):
    """A client went over a rate limit; ``retry_after_s`` says when it may ask again (Retry-After)."""

    status = 429

    def __init__(self, message: str, *, retry_after_s: float, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after_s = float(retry_after_s)
