"""POST /v1/responses and the stored responses (no HTTP here).

A response runs on the chat pipeline: its earlier turns (a previous response's chain, or a conversation's items),
its instructions and its input become chat messages, rendered and encoded as chat does, guided and tool-parsed as
chat does, and generated with the owner's prefix cache, so a chain continued starts from the cached earlier turns.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from anyio import to_thread
from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.chat import ChatCompletionRequest, ChatMessage
from ortserve_common.protocol.common import now
from ortserve_common.protocol.responses import ResponsesRequest

from chat_service.conversations.items import messages_from_items
from chat_service.conversations.serving import ConversationServing
from chat_service.conversations.store.responses import ResponseRecord, ResponseStore
from chat_service.responses.compaction import expand_compactions
from chat_service.responses.events import Event, ResponseEvents
from chat_service.responses.input import (
    chat_tool_choice,
    chat_tools,
    check_tool_outputs,
    guidance_candidates,
    input_items,
    refuse_unsupported,
)
from chat_service.responses.items import output_items, response_object
from chat_service.serving.base import start_stream
from chat_service.serving.chat import ChatServing
from chat_service.serving.chat_choices import ChatChoice
from chat_service.serving.chat_context import fit_history, history_budget
from chat_service.serving.chat_prompt import PromptEncoder
from chat_service.serving.generation import TextGeneration
from chat_service.serving.guided import resolve_guidance
from chat_service.serving.multiplex import run_all
from chat_service.tools.request import ToolPlan, plan_tools

logger = logging.getLogger(__name__)

T = TypeVar("T")
OPERATION = "responses"


def response_not_found(response_id: str, param: str | None = None) -> OpenAIError:
    what = "Previous response" if param == "previous_response_id" else "Response"
    return OpenAIError(404, f"{what} with id '{response_id}' not found.", "invalid_request_error", param, "not_found")


@dataclass
class ResponseTurn:
    """One request, ready to generate; `history` is what came before its input (chain or conversation)."""

    request: ResponsesRequest
    owner: str
    chat: ChatCompletionRequest  # the messages the model sees, and the sampling fields
    plan: ToolPlan
    generation: TextGeneration
    choice: ChatChoice
    inputs: list[dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)
    id: str = ""
    created_at: int = 0
    context: list[dict[str, Any]] = field(default_factory=list)  # the whole chain once finished: history, input, output
    priority: Priority = DEFAULT_PRIORITY  # the key's: orders the model's queues (ortserve_common.priority)


class ResponsesServing:
    def __init__(
        self, chat: ChatServing, store: ResponseStore, conversations: ConversationServing, reserve_tokens: int
    ) -> None:
        self.chat = chat
        self.store = store
        self.conversations = conversations
        self.reserve_tokens = reserve_tokens

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(call, *args)

    # Creating ------------------------------------------------------------------------------------------------------
    async def create(
        self, request: ResponsesRequest, owner: str = "", priority: Priority = DEFAULT_PRIORITY
    ) -> dict[str, Any] | AsyncGenerator[Event, None]:
        turn = await self.prepare(request, owner, priority)
        if request.stream:
            return await start_stream(self.stream(turn))
        async with self.chat.run(turn.chat, [turn.generation.stats], OPERATION, priority):
            await run_all([turn.generation], [turn.choice.add])
        finish = turn.generation.stats.finish_reason
        turn.choice.choice(finish)  # flushes what the tool-call parser still held
        incomplete = finish == "length"
        output = output_items(turn.choice.message(), incomplete, request.parallel_tool_calls is not False)
        return await self._finish(turn, "incomplete" if incomplete else "completed", output)

    async def prepare(
        self,
        request: ResponsesRequest,
        owner: str,
        priority: Priority = DEFAULT_PRIORITY,
        history: list[dict[str, Any]] | None = None,
    ) -> ResponseTurn:
        """Everything checked and encoded, before any slot is taken or any byte streamed. `history` is the chain
        before this input when the caller holds it (a WebSocket's own cache); else it is read from the store."""
        refuse_unsupported(request)  # the cheap checks before any database read, compilation or tokenizing
        model = self.chat.pool.model(request.model)
        request = model.config.fill(request)  # the response names the model and the samplers it ran with
        settings = self.chat.settings
        request = request.model_copy(
            update={
                "temperature": settings.default_temperature if request.temperature is None else request.temperature,
                "top_p": settings.default_top_p if request.top_p is None else request.top_p,
            }
        )
        engine = model.engine
        vocabulary = engine.tokenizer.vocabulary
        tools = chat_tools(request)
        # Tool schemas are compiled to be checked: off the event loop, as for chat completions.
        plan = await asyncio.to_thread(
            plan_tools, tools, chat_tool_choice(request), vocabulary, request.parallel_tool_calls
        )
        if history is None:
            history = await self._history(request, owner)
        expanded = await expand_compactions(self.store, owner, input_items(request.input))
        inputs = await self.chat.images.read_items(expanded)  # images → their text, read by OCR
        check_tool_outputs(history, inputs)
        prefix = [ChatMessage(role="system", content=request.instructions)] if request.instructions else []
        earlier, new = messages_from_items(history), messages_from_items(inputs)
        encode = PromptEncoder(engine.tokenizer, plan)

        def fit() -> tuple[list[ChatMessage], list[int]]:
            """Rendering, tokenizing and fitting a long history take milliseconds: run off the event loop."""
            messages = [*prefix, *earlier, *new]
            if request.truncation == "auto" and earlier:
                budget = history_budget(engine.context_length, request.max_output_tokens, self.reserve_tokens)
                messages = fit_history(prefix, earlier, new, encode.count, budget)
                dropped = len(prefix) + len(earlier) + len(new) - len(messages)
                if dropped:
                    logger.info("response: %d oldest messages left out to fit the context", dropped)
            return messages, encode(messages)

        messages, prompt_ids = await asyncio.to_thread(fit)
        chat = ChatCompletionRequest(
            model=request.model,
            messages=messages,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            min_p=request.min_p,
            repetition_penalty=request.repetition_penalty,
            frequency_penalty=request.frequency_penalty,
            presence_penalty=request.presence_penalty,
            user=request.user,
            max_completion_tokens=request.max_output_tokens,
            tools=tools,
        )
        chat = model.config.fill(chat)  # the defaults a response has no field for (penalties, stop)
        guidance = await resolve_guidance(guidance_candidates(request, plan), vocabulary)
        max_tokens = self.chat.resolve_max_tokens(model, len(prompt_ids), request.max_output_tokens, "input")
        params = self.chat.sampling_params(chat, None, guidance)[0]
        generation = TextGeneration(engine, prompt_ids, max_tokens, params, chat.stop_list(), owner, priority)
        choice = ChatChoice(0, plan, vocabulary, False)
        return ResponseTurn(request, owner, chat, plan, generation, choice, inputs, history, priority=priority)

    async def chain(self, owner: str, previous_response_id: str) -> list[dict[str, Any]]:
        """A stored response's whole chain (its history, input and output), to continue it."""
        record = await self._run(self.store.get, owner, previous_response_id)
        if record is None:
            raise response_not_found(previous_response_id, "previous_response_id")
        return record.context_items

    async def _history(self, request: ResponsesRequest, owner: str) -> list[dict[str, Any]]:
        if request.previous_response_id is not None:
            return await self.chain(owner, request.previous_response_id)
        conversation_id = request.conversation_id()
        if conversation_id is not None:
            return await self.conversations.history(owner, conversation_id)
        return []

    async def stream(self, turn: ResponseTurn) -> AsyncGenerator[Event, None]:
        request = turn.request
        turn.id, turn.created_at = new_response_id(), now()
        events = ResponseEvents(request.parallel_tool_calls is not False)
        snapshot = response_object(request, turn.id, turn.created_at, "in_progress", [])
        async with self.chat.run(turn.chat, [turn.generation.stats], OPERATION, turn.priority) as run:
            try:
                yield events.event("response.created", response=snapshot)
                yield events.event("response.in_progress", response=snapshot)
                async with aclosing(turn.generation.pieces()) as pieces:
                    async for piece in pieces:
                        for event in self._piece_events(turn, events, turn.choice.delta(piece)):
                            yield event
                finish = turn.generation.stats.finish_reason
                for part in turn.choice.final(finish):
                    for event in self._piece_events(turn, events, part):
                        yield event
                incomplete = finish == "length"
                for event in events.close(incomplete):
                    yield event
                status = "incomplete" if incomplete else "completed"
                body = await self._finish(turn, status, events.output)
                yield events.event(f"response.{status}", response=body)
            except OpenAIError as exc:  # told to the client as response.failed; the span and metrics still say so
                run.failed(exc)
                yield self._failed(turn, events, exc.code or "server_error", exc.message)
            except Exception as exc:
                logger.exception("response %s failed after its stream started", turn.id)
                run.failed(exc)
                yield self._failed(turn, events, "server_error", "Internal server error during streaming.")

    @staticmethod
    def _piece_events(turn: ResponseTurn, events: ResponseEvents, part: Any) -> list[Event]:
        if part is None:
            return []
        out: list[Event] = []
        if part.delta.content:
            out += events.text(part.delta.content)
        for call in part.delta.tool_calls or []:
            out += events.tool_call(call)
        return out

    def _failed(self, turn: ResponseTurn, events: ResponseEvents, code: str, message: str) -> Event:
        error = {"code": code, "message": message}
        body = response_object(turn.request, turn.id, turn.created_at, "failed", events.output, error=error)
        return events.event("response.failed", response=body)

    async def _finish(self, turn: ResponseTurn, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        """The response object; stored (and appended to its conversation) before the client sees it complete."""
        request = turn.request
        turn.id = turn.id or new_response_id()
        turn.created_at = turn.created_at or now()
        body = response_object(request, turn.id, turn.created_at, status, output, turn.generation.stats)
        conversation_id = request.conversation_id()
        if conversation_id is not None:
            items = [{k: v for k, v in item.items() if k != "id"} for item in [*turn.inputs, *output]]
            await self.conversations.append(turn.owner, conversation_id, items)
        turn.context = [*turn.history, *turn.inputs, *output]
        if request.store is not False:
            await self._run(self.store.put, turn.owner, ResponseRecord(turn.id, body, turn.inputs, turn.context))
        return body

    # Stored responses ----------------------------------------------------------------------------------------------
    async def retrieve(self, owner: str, response_id: str) -> dict[str, Any]:
        return (await self._record(owner, response_id)).body

    async def delete(self, owner: str, response_id: str) -> dict[str, Any]:
        if not await self._run(self.store.delete, owner, response_id):
            raise response_not_found(response_id)
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def input_items(
        self, owner: str, response_id: str, after: str | None, limit: int, order: Literal["asc", "desc"]
    ) -> dict[str, Any]:
        items = (await self._record(owner, response_id)).input_items
        if order == "desc":
            items = items[::-1]
        if after is not None:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise invalid_request(f"Invalid 'after': no item with id '{after}' in this listing.", "after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }

    async def _record(self, owner: str, response_id: str) -> ResponseRecord:
        record = await self._run(self.store.get, owner, response_id)
        if record is None:
            raise response_not_found(response_id)
        return record


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"
