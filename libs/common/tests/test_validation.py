"""Validation errors become one OpenAI-style 400 naming the field."""

from __future__ import annotations

from ortserve_common.protocol.chat import ChatCompletionRequest
from ortserve_common.validation import param_from_loc, validation_error
from pydantic import ValidationError


def test_param_from_loc() -> None:
    assert param_from_loc(("body", "messages", 0, "role")) == "messages[0].role"
    assert param_from_loc(("query", "limit")) == "limit"  # where it came from is not part of the name
    assert param_from_loc(("body", "path")) == "path"  # a body field named like a location keeps its name
    assert param_from_loc(("body", "stop", "list[str]")) == "stop"
    assert param_from_loc(("body",)) is None


def _error_for(body: dict):
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        return validation_error([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])
    raise AssertionError("expected a validation error")


def test_range_error_names_field_and_value() -> None:
    err = _error_for({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3})
    assert err.status == 400 and err.param == "temperature" and "3" in err.message


def test_missing_field_code() -> None:
    err = _error_for({"messages": [{"role": "user", "content": "x"}]})
    assert err.param == "model" and err.code == "missing_required_parameter"


def test_wrong_type_code() -> None:
    err = _error_for({"model": "m", "messages": "hello"})
    assert err.param == "messages" and err.code == "invalid_type"
