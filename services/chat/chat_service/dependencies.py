"""FastAPI dependencies: the serving objects that the lifespan put on app.state.

Async on purpose: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per request for nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from ortserve_common.errors import invalid_request
from ortserve_common.priority import DEFAULT_PRIORITY, PRIORITIES, PRIORITY_HEADER, Priority

from chat_service.conversations.serving import ConversationServing
from chat_service.messages.serving import MessagesServing
from chat_service.models.pool import ModelPool
from chat_service.responses.compaction import CompactionServing
from chat_service.responses.serving import ResponsesServing
from chat_service.serving.chat import ChatServing
from chat_service.serving.completions import CompletionServing
from chat_service.serving.templates import PromptTemplateServing
from chat_service.serving.tokenize import TokenizeServing


async def _chat_serving(request: Request) -> ChatServing:
    return request.app.state.chat_serving


async def _completion_serving(request: Request) -> CompletionServing:
    return request.app.state.completion_serving


async def _tokenize_serving(request: Request) -> TokenizeServing:
    return request.app.state.tokenize_serving


async def _responses_serving(request: Request) -> ResponsesServing:
    return request.app.state.responses_serving


async def _compaction_serving(request: Request) -> CompactionServing:
    return request.app.state.compaction_serving


async def _messages_serving(request: Request) -> MessagesServing:
    return request.app.state.messages_serving


async def _pool(request: Request) -> ModelPool:
    return request.app.state.pool


ChatServingDep = Annotated[ChatServing, Depends(_chat_serving)]
CompletionServingDep = Annotated[CompletionServing, Depends(_completion_serving)]
TokenizeServingDep = Annotated[TokenizeServing, Depends(_tokenize_serving)]
ResponsesServingDep = Annotated[ResponsesServing, Depends(_responses_serving)]
CompactionServingDep = Annotated[CompactionServing, Depends(_compaction_serving)]
MessagesServingDep = Annotated[MessagesServing, Depends(_messages_serving)]
ModelPoolDep = Annotated[ModelPool, Depends(_pool)]


async def _conversation_serving(request: Request) -> ConversationServing:
    return request.app.state.conversation_serving


async def _template_serving(request: Request) -> PromptTemplateServing:
    return request.app.state.template_serving


async def _owner(x_ortserve_api_key_id: Annotated[str | None, Header()] = None) -> str:
    """Whose conversations these are: the key id that the proxy sets after checking the key (and that it overwrites
    when a client sends its own). Called directly, without the proxy, everything belongs to "" alike."""
    return x_ortserve_api_key_id or ""


ConversationServingDep = Annotated[ConversationServing, Depends(_conversation_serving)]
PromptTemplateServingDep = Annotated[PromptTemplateServing, Depends(_template_serving)]
OwnerDep = Annotated[str, Depends(_owner)]


async def _priority(x_ortserve_key_priority: Annotated[str | None, Header()] = None) -> Priority:
    """Which queued requests take a free slot first: the key's priority, which the proxy sets from the key's limits
    (and overwrites when a client sends its own). Absent, or called directly without the proxy: interactive, as every
    request was before priorities. A value that is neither is a misconfigured proxy or client: refused (400) rather
    than guessed, since guessing interactive would let a typo jump the queue."""
    value = (x_ortserve_key_priority or "").strip().lower()
    if not value:
        return DEFAULT_PRIORITY
    for priority in PRIORITIES:
        if value == priority:
            return priority
    raise invalid_request(
        f"The {PRIORITY_HEADER} header must be one of {', '.join(PRIORITIES)}; got {x_ortserve_key_priority!r}.",
        code="invalid_priority",
    )


PriorityDep = Annotated[Priority, Depends(_priority)]
