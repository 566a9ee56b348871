"""The one exception type every layer raises; `app.py` turns it into OpenAI-shaped JSON."""

from __future__ import annotations

from typing import Any


class OpenAIError(Exception):
    """A failure that reaches the client as `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> OpenAIError:
    return OpenAIError(400, message, "invalid_request_error", param, code)


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model '{model}' does not exist or is not served here.",
        "invalid_request_error",
        "model",
        "model_not_found",
    )


def overloaded(message: str, status: int, retry_after_s: int) -> OpenAIError:
    """429 when the queue is full, 503 when a request waited too long; both tell the client when to retry."""
    code = "rate_limit_exceeded" if status == 429 else "service_unavailable"
    type_ = "rate_limit_error" if status == 429 else "server_error"
    return OpenAIError(status, message, type_, None, code, headers={"Retry-After": str(retry_after_s)})
