"""The Open Responses specification's own JSON schemas (its OpenAPI document, vendored with its licence in
openresponses/), as validators for what /v1/responses sends: the response object, every streaming event, the
WebSocket error event and the compaction object. A failure names the schema and the path of the offending field."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "openresponses" / "openapi.json"
_URI = "urn:openresponses:openapi"


@cache
def _spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@cache
def _registry() -> Registry:
    return Registry().with_resource(_URI, Resource.from_contents(_spec(), default_specification=DRAFT202012))


@cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    if schema_name not in _spec()["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the Open Responses document")
    ref = {"$ref": f"{_URI}#/components/schemas/{schema_name}"}
    return jsonschema.Draft202012Validator(ref, registry=_registry())


@cache
def event_schemas() -> dict[str, str]:
    """Streaming event type (response.created, ...) → the name of its schema in the document."""
    found = {}
    for name, schema in _spec()["components"]["schemas"].items():
        kind = schema.get("properties", {}).get("type", {}).get("enum", [None])[0]
        if name.endswith("StreamingEvent") and kind:
            found[kind] = name
    return found


def schema_errors(instance: Any, schema_name: str) -> list[str]:
    """Every violation, as 'path: message' (empty when the instance is valid)."""
    errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{schema_name} {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"[:400] for e in errors]


def assert_valid(instance: Any, schema_name: str) -> None:
    errors = schema_errors(instance, schema_name)
    assert not errors, "\n".join(errors)


def assert_valid_response(response: dict[str, Any]) -> None:
    assert_valid(response, "ResponseResource")


def assert_valid_event(event: dict[str, Any], websocket: bool = False) -> None:
    """A streaming event by its type; on a WebSocket an `error` event is the WebSocket error envelope."""
    if websocket and event.get("type") == "error":
        assert_valid(event, "WebSocketErrorEvent")
        return
    kind = event.get("type")
    assert kind in event_schemas(), f"event type {kind!r} is not an Open Responses streaming event"
    assert_valid(event, event_schemas()[kind])
