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
