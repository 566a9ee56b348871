"""Server-sent events in the framing the OpenAI SDK parses: `data: <json>\n\n`, ending with `data: [DONE]`."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from pydantic import BaseModel

from ortserve_common.errors import OpenAIError, error_body

logger = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"
# A proxy must pass each event on as it comes (nginx buffers unless told), and nobody may cache a stream.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_data(payload: BaseModel | dict[str, Any]) -> str:
    if isinstance(payload, BaseModel):
        text = payload.model_dump_json(exclude_none=False)
    else:
        text = json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n"


async def sse_stream(chunks: AsyncGenerator[BaseModel, None]) -> AsyncIterator[str]:
    """Frame chunks; once the status is already 200, a failure can only be reported as an error event (as vLLM does)."""
    try:
        # aclosing: a client that disconnects while we sit at `yield` must still end the generation at once.
        async with aclosing(chunks):
            async for chunk in chunks:
                yield sse_data(chunk)
    except OpenAIError as exc:
        yield sse_data(exc.body())
    except Exception:
        logger.exception("stream failed after it started")
        yield sse_data(error_body("Internal server error during streaming.", "server_error", None, "internal_error"))
    yield DONE


def sse_event(payload: dict[str, Any]) -> str:
    """A typed event, as OpenAI's Responses API frames them: `event: <type>` then `data: <json>`."""
    return f"event: {payload['type']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def sse_event_stream(events: AsyncGenerator[dict[str, Any], None]) -> AsyncIterator[str]:
    """Frame typed events (no [DONE]: the Responses API ends with its terminal event). The serving layer reports its
    own failures as a `response.failed` event; anything that still escapes becomes an `error` event."""
    sequence = 0
    try:
        async with aclosing(events):
            async for event in events:
                sequence = event.get("sequence_number", sequence) + 1
                yield sse_event(event)
    except Exception:
        logger.exception("event stream failed after it started")
        error = {"type": "error", "sequence_number": sequence, "code": "internal_error", "param": None}
        yield sse_event({**error, "message": "Internal server error during streaming."})
