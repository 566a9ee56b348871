"""POST /v1/responses/compact: a chain of turns made into one `compaction` item that a later request takes as input.

The compacted turns are stored per key like a response (the `response.compaction` object is its body), and the item's
`encrypted_content` names that record: nothing is encrypted, the content is only a reference, and another key cannot
use it. When the turns fit in `keep_tokens` they are kept as they are; past that the model itself summarizes them, and
the summary stands in for them as one developer message.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from ortserve_common.errors import invalid_request
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.common import now
from ortserve_common.protocol.conversations import InputMessageItem
from ortserve_common.protocol.responses import CompactRequest, ResponsesRequest

from chat_service.conversations.items import messages_from_items
from chat_service.conversations.store.responses import ResponseRecord, ResponseStore
from chat_service.responses.input import input_items
from chat_service.responses.items import new_item_id
from chat_service.serving.chat_prompt import PromptEncoder
from chat_service.tools.request import plan_tools

if TYPE_CHECKING:
    from chat_service.responses.serving import ResponsesServing

logger = logging.getLogger(__name__)

CONTENT_PREFIX = "ortserve-compaction-v1:"
SUMMARY_MARKER = "Summary of the earlier conversation (compacted):"
SUMMARY_INSTRUCTIONS = (
    "You compress conversations. Summarize the conversation below for a later continuation: keep every fact, name, "
    "number, decision and open task; drop pleasantries. Write plain sentences, nothing else."
)


def compaction_content(record_id: str) -> str:
    return CONTENT_PREFIX + record_id


async def expand_compactions(store: ResponseStore, owner: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each compaction item replaced by the turns it stands for; one unknown to this key is a 400."""
    if not any(item.get("type") == "compaction" for item in items):
        return items
    expanded: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if item.get("type") != "compaction":
            expanded.append(item)
            continue
        content = item["encrypted_content"]
        record = None
        if content.startswith(CONTENT_PREFIX):
            record = await to_thread.run_sync(store.get, owner, content.removeprefix(CONTENT_PREFIX))
        if record is None or record.body.get("object") != "response.compaction":
            raise invalid_request(
                "This compaction item is not known here: send back the output of this server's "
                "/v1/responses/compact, made with the same API key.",
                f"input[{i}].encrypted_content",
                "compaction_not_found",
            )
        expanded.extend(record.context_items)
    return expanded


class CompactionServing:
    def __init__(self, responses: ResponsesServing, keep_tokens: int, summary_tokens: int) -> None:
        self.responses = responses
        self.keep_tokens = keep_tokens
        self.summary_tokens = summary_tokens

    async def compact(
        self, request: CompactRequest, owner: str, priority: Priority = DEFAULT_PRIORITY
    ) -> dict[str, Any]:
        model = self.responses.chat.pool.model(request.model)  # an unknown model is a 404 before any work
        history = []
        if request.previous_response_id is not None:
            history = await self.responses.chain(owner, request.previous_response_id)
        inputs = await expand_compactions(self.responses.store, owner, input_items(request.input))
        turns = [*history, *inputs]
        if not turns:
            raise invalid_request("Nothing to compact: give input or previous_response_id.", "input")
        engine = model.engine
        encode = PromptEncoder(engine.tokenizer, plan_tools(None, None, None))
        input_tokens = await to_thread.run_sync(encode.count, messages_from_items(turns))
        output_tokens = 0
        if input_tokens <= self.keep_tokens:
            kept = turns
        else:
            summary, output_tokens = await self._summarize(model.config.id, turns, owner, priority)
            kept = [_developer_message(f"{SUMMARY_MARKER}\n{summary}")]
            logger.info("compact: %d turns (%d tokens) summarized in %d", len(turns), input_tokens, output_tokens)
        body = compaction_object(f"resp_{uuid.uuid4().hex}", input_tokens, output_tokens)
        record = ResponseRecord(body["id"], body, inputs, kept)
        await to_thread.run_sync(self.responses.store.put, owner, record)
        return body

    async def _summarize(
        self, model_id: str, turns: list[dict[str, Any]], owner: str, priority: Priority
    ) -> tuple[str, int]:
        """The model's own summary, greedy, as one response that is not stored."""
        transcript = "\n".join(f"{message.role}: {message.text()}" for message in messages_from_items(turns))
        request = ResponsesRequest(
            model=model_id,
            instructions=SUMMARY_INSTRUCTIONS,
            input=[InputMessageItem(role="user", content=transcript)],
            max_output_tokens=self.summary_tokens,
            temperature=0.0,
            store=False,
            truncation="auto",
        )
        reply = await self.responses.create(request, owner, priority)
        assert isinstance(reply, dict)  # not streamed
        text = "".join(
            part["text"] for item in reply["output"] if item["type"] == "message" for part in item["content"]
        )
        return text.strip(), reply["usage"]["output_tokens"]


def compaction_object(record_id: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """The `response.compaction` object: one compaction item that names the stored record of the turns."""
    content = compaction_content(record_id)
    item = {"id": new_item_id("compaction"), "type": "compaction", "encrypted_content": content}
    return {
        "id": record_id,
        "object": "response.compaction",
        "created_at": now(),
        "output": [item],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def _developer_message(text: str) -> dict[str, Any]:
    part = {"type": "input_text", "text": text}
    item = {"type": "message", "role": "developer", "status": "completed", "content": [part]}
    return {"id": new_item_id("message"), **item}
