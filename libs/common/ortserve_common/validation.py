"""Turn pydantic/FastAPI validation errors into one OpenAI-style 400 that names the offending field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ortserve_common.errors import OpenAIError

_MISSING = {"missing"}
_TYPE_ERRORS = ("_type", "_parsing", "literal_error", "union_tag", "model_attributes_type", "dict_type", "list_type")


def _is_branch_label(item: Any) -> bool:
    """pydantic's names for a union's branches ("str", "list[...]", "function-after[...]"), not field names."""
    return isinstance(item, str) and ("[" in item or "function-" in item or item in {"str", "int", "list", "float"})


def _deepest_branch(errors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A union (`str | list[part]`) reports every branch it tried, in order; the one that got furthest into the value
    says what is wrong with it (a list of parts with an image in it is not "not a valid string")."""
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    if not loc or not _is_branch_label(loc[-1]):
        return first
    field = loc[:-1]
    branches = [e for e in errors if tuple(e.get("loc", ()))[: len(field)] == field]
    # Only a branch whose own validator refused the value (a value_error) says more than "not a string": a value
    # that fits no branch (`["a", 1]` for str | list[str] | list[int]) is named as a whole, by the first error.
    telling = [e for e in branches if e.get("type") == "value_error"]
    return max(telling, key=lambda e: len(e.get("loc", ()))) if telling else first


def param_from_loc(loc: Sequence[Any]) -> str | None:
    """("body", "messages", 0, "role") → "messages[0].role", ("query", "limit") → "limit"; pydantic's union-branch
    names are dropped."""
    parts: list[str] = []
    for index, item in enumerate(loc):
        if index == 0 and item in ("body", "query", "path", "header"):  # where it was; a field may be named "path"
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _is_branch_label(item):
            continue  # union branch labels such as "list[str]" or "function-after[...]"
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or None


def validation_error(errors: Sequence[dict[str, Any]]) -> OpenAIError:
    if not errors:
        return OpenAIError(400, "Invalid request.", code="invalid_value")
    first = _deepest_branch(errors)
    if first.get("type") == "json_invalid":
        return OpenAIError(
            400,
            f"Request body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}",
            code="invalid_json",
        )
    param = param_from_loc(first.get("loc", ()))
    etype = str(first.get("type", ""))
    if param is None:
        return OpenAIError(
            400, "The request body must be a JSON object (send Content-Type: application/json).", code="invalid_json"
        )
    if etype in _MISSING:
        return OpenAIError(
            400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    code = "invalid_type" if any(t in etype for t in _TYPE_ERRORS) else "invalid_value"
    msg = str(first.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r:.80})"
    return OpenAIError(400, f"Invalid value for '{param}': {msg}{shown}", param=param, code=code)
