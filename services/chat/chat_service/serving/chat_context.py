"""What the model sees for a chat request: a prompt template's system prompt, a stored conversation's history (cut
from its oldest turns when the context is full), then the request's own messages; and, once the reply is done, the
request's messages and the reply appended to that conversation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ortserve_common.errors import invalid_request
from ortserve_common.protocol.chat import AssistantMessage, ChatCompletionRequest, ChatMessage

from chat_service.conversations.items import items_from_messages, items_from_reply, messages_from_items
from chat_service.conversations.serving import ConversationServing
from chat_service.serving.templates import PromptTemplateServing

logger = logging.getLogger(__name__)

TokenCounter = Callable[[list[ChatMessage]], int]
_PINNED = ("system", "developer")  # instructions stay however old they are


@dataclass
class ChatTurn:
    request: ChatCompletionRequest  # with the template's defaults filled in
    messages: list[ChatMessage]  # what the model sees
    owner: str = ""
    conversation_id: str | None = None
    dropped_messages: int = 0


def fit_history(
    prefix: list[ChatMessage],
    history: list[ChatMessage],
    new: list[ChatMessage],
    count_tokens: TokenCounter,
    budget: int,
) -> list[ChatMessage]:
    """prefix + as much recent history as fits in `budget` tokens + new, dropping whole turns (a turn starts at a
    user message) from the oldest; system and developer messages are never dropped. With no history left, the new
    messages go alone, and the usual context check speaks if even they do not fit."""
    if not history or count_tokens([*prefix, *history, *new]) <= budget:
        return [*prefix, *history, *new]

    def kept(cut: int) -> list[ChatMessage]:
        return [m for m in history[:cut] if m.role in _PINNED] + history[cut:]

    def fits(cut: int) -> bool:
        return count_tokens([*prefix, *kept(cut), *new]) <= budget

    cuts = [0] + [i for i, m in enumerate(history) if m.role == "user" and i > 0] + [len(history)]
    low, high = 0, len(cuts) - 1  # cuts[high] always "fits": nothing more can be dropped
    while low < high:  # the smallest cut that fits: fewer messages never take more tokens
        middle = (low + high) // 2
        if fits(cuts[middle]):
            high = middle
        else:
            low = middle + 1
    return [*prefix, *kept(cuts[low]), *new]


def history_budget(context_length: int, requested: int | None, reserve_tokens: int) -> int:
    """Prompt tokens a history may fill: the context less the reply's room (the request's max tokens, or the reserve
    setting, at most a quarter of the context: a bigger one would leave a small context no room for history)."""
    return context_length - (requested if requested is not None else min(reserve_tokens, context_length // 4))


class ChatContext:
    def __init__(
        self, conversations: ConversationServing, templates: PromptTemplateServing, reserve_tokens: int
    ) -> None:
        self.conversations = conversations
        self.templates = templates
        self.reserve_tokens = reserve_tokens

    async def turn(
        self, request: ChatCompletionRequest, owner: str, count_tokens: TokenCounter, context_length: int
    ) -> ChatTurn:
        request, prefix = await self.templates.apply(request)
        conversation_id = request.conversation_id()
        if conversation_id is None:
            return ChatTurn(request, [*prefix, *request.messages], owner)
        if request.n is not None and request.n > 1:
            raise invalid_request("A request that names a conversation asks for one choice (n = 1).", "n")
        history = messages_from_items(await self.conversations.history(owner, conversation_id))
        budget = history_budget(
            context_length, request.max_completion_tokens or request.max_tokens, self.reserve_tokens
        )
        # Counting means rendering and tokenizing the whole history, maybe several times: off the event loop.
        messages = await asyncio.to_thread(fit_history, prefix, history, request.messages, count_tokens, budget)
        dropped = len(prefix) + len(history) + len(request.messages) - len(messages)
        if dropped:
            logger.info("conversation %s: %d oldest messages left out to fit the context", conversation_id, dropped)
        return ChatTurn(request, messages, owner, conversation_id, dropped)

    async def record(self, turn: ChatTurn, reply: AssistantMessage) -> None:
        """Append the request's messages and the reply, together, to the turn's conversation (if it names one)."""
        if turn.conversation_id is None:
            return
        items = items_from_messages(turn.request.messages) + items_from_reply(reply)
        await self.conversations.append(turn.owner, turn.conversation_id, items)
