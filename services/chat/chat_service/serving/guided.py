"""The request's output constraint, if any: response_format, a forced tool call, or a guided_* extension field.

Everything is compiled and checked here, before a stream starts, so a bad schema, regex or grammar is a 400 that
names its field rather than an error event in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ortserve_common.errors import invalid_request
from ortserve_common.protocol.chat import ResponseFormat
from ortserve_common.protocol.sampling import SamplingRequest

from chat_service.engine.guidance import GuidanceError, check_guidance
from chat_service.engine.types import GuidanceSpec
from chat_service.engine.vocabulary import Vocabulary

ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


def response_format_guidance(response_format: ResponseFormat | None) -> tuple[GuidanceSpec, str] | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return GuidanceSpec("json_schema", json.dumps(ANY_JSON_OBJECT)), "response_format"
    if response_format.json_schema is None:
        param = "response_format.json_schema"
        raise invalid_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    schema = response_format.json_schema.json_schema
    source = json.dumps(ANY_JSON_OBJECT if schema is None else schema)
    return GuidanceSpec("json_schema", source), "response_format.json_schema.schema"


def extension_guidance(request: SamplingRequest) -> list[tuple[GuidanceSpec, str]]:
    found = []
    if request.guided_json is not None:
        source = request.guided_json if isinstance(request.guided_json, str) else json.dumps(request.guided_json)
        found.append((GuidanceSpec("json_schema", source), "guided_json"))
    if request.guided_regex is not None:
        found.append((GuidanceSpec("regex", request.guided_regex), "guided_regex"))
    if request.guided_grammar is not None:
        found.append((GuidanceSpec("lark", request.guided_grammar), "guided_grammar"))
    return found


async def resolve_guidance(
    candidates: list[tuple[GuidanceSpec, str]], vocabulary: Vocabulary | None
) -> GuidanceSpec | None:
    """The one guidance of a request (two are a 400), checked; `candidates` are (spec, the field it came from)."""
    if not candidates:
        return None
    if len(candidates) > 1:
        names = " and ".join(param for _, param in candidates)
        raise invalid_request(f"Only one output constraint per request; got {names}.", candidates[1][1])
    spec, param = candidates[0]
    try:
        # Compiling a large schema can take a while: keep the event loop serving meanwhile.
        return await asyncio.to_thread(check_guidance, spec, vocabulary)
    except GuidanceError as exc:
        raise invalid_request(f"Invalid {param}: {exc}", param) from exc
