"""One chat choice's reply as it is generated: content or tool calls (parsed as they stream), and logprobs."""

from __future__ import annotations

from ortserve_common.protocol.chat import (
    AssistantMessage,
    ChatCompletionChoice,
    ChatCompletionChunkChoice,
    ChatFinishReason,
    ChoiceLogprobs,
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    ResponseFunctionCall,
    ResponseToolCall,
    TokenLogprob,
)

from chat_service.engine import FinishReason
from chat_service.engine.vocabulary import Vocabulary
from chat_service.serving.generation import TextPiece
from chat_service.serving.logprobs import chat_logprobs
from chat_service.tools.parser import ParserOutput, ToolCallDelta, tool_call_parser
from chat_service.tools.request import ToolPlan


class ChatChoice:
    def __init__(self, index: int, plan: ToolPlan, vocabulary: Vocabulary | None, logprobs: bool) -> None:
        self.index = index
        self._parser = tool_call_parser(plan.names, plan.mode == "forced") if plan.parses_calls else None
        self._max_calls = None if plan.parallel else 1
        self._vocabulary = vocabulary
        self._logprobs = logprobs
        self._content: list[str] = []
        self._held_logprobs: list[TokenLogprob] = []  # waiting for a chunk to ride on
        self._all_logprobs: list[TokenLogprob] = []

    # Streaming -----------------------------------------------------------------------------------------------------
    def delta(self, piece: TextPiece) -> ChatCompletionChunkChoice | None:
        """The chunk for this piece, or None while the tool-call parser still holds its text back."""
        self._add_logprobs(piece)
        out = self._parse(piece.text)
        return self._chunk_choice(out) if out.content or out.deltas else None

    def final(self, finish_reason: FinishReason | None) -> list[ChatCompletionChunkChoice]:
        """What the parser still held, then the chunk with the finish reason."""
        out = self._limited(self._parser.finish() if self._parser is not None else ParserOutput())
        self._content.append(out.content)
        chunks = []
        if out.content or out.deltas or self._held_logprobs:
            chunks.append(self._chunk_choice(out))
        chunks.append(
            ChatCompletionChunkChoice(index=self.index, delta=DeltaMessage(), finish_reason=self.finish(finish_reason))
        )
        return chunks

    # Whole replies -------------------------------------------------------------------------------------------------
    def add(self, piece: TextPiece) -> None:
        self._add_logprobs(piece)
        self._parse(piece.text)

    def choice(self, finish_reason: FinishReason | None) -> ChatCompletionChoice:
        if self._parser is not None:
            self._content.append(self._parser.finish().content)
        logprobs = ChoiceLogprobs(content=self._all_logprobs) if self._logprobs else None
        return ChatCompletionChoice(
            index=self.index, message=self.message(), logprobs=logprobs, finish_reason=self.finish(finish_reason)
        )

    def message(self) -> AssistantMessage:
        """The whole reply, once `choice` or `final` has run (a stream's reply too, for its conversation)."""
        calls = self._parser.calls[: self._max_calls] if self._parser is not None else []
        content = "".join(self._content)
        return AssistantMessage(
            content=None if calls and not content.strip() else content,
            tool_calls=[
                ResponseToolCall(id=c.id, function=ResponseFunctionCall(name=c.name, arguments=c.arguments))
                for c in calls
            ]
            or None,
        )

    def finish(self, finish_reason: FinishReason | None) -> ChatFinishReason | None:
        if finish_reason == "stop" and self._parser is not None and self._parser.calls:
            return "tool_calls"
        return finish_reason

    # Internals -----------------------------------------------------------------------------------------------------
    def _parse(self, text: str) -> ParserOutput:
        out = self._parser.feed(text) if self._parser is not None else ParserOutput(content=text)
        self._content.append(out.content)
        return self._limited(out)

    def _limited(self, out: ParserOutput) -> ParserOutput:
        if self._max_calls is not None:
            out.deltas = [d for d in out.deltas if d.index < self._max_calls]
        return out

    def _add_logprobs(self, piece: TextPiece) -> None:
        if self._logprobs and piece.tokens and self._vocabulary is not None:
            entries = chat_logprobs(piece.tokens, self._vocabulary)
            self._held_logprobs.extend(entries)
            self._all_logprobs.extend(entries)

    def _chunk_choice(self, out: ParserOutput) -> ChatCompletionChunkChoice:
        logprobs = None
        if self._logprobs:
            logprobs, self._held_logprobs = ChoiceLogprobs(content=self._held_logprobs), []
        delta = DeltaMessage(content=out.content or None, tool_calls=_merge(out.deltas) or None)
        return ChatCompletionChunkChoice(index=self.index, delta=delta, logprobs=logprobs)


def _merge(deltas: list[ToolCallDelta]) -> list[DeltaToolCall]:
    """OpenAI's delta layout: the first for a call has id, type and name; fragments of one call are joined."""
    merged: list[DeltaToolCall] = []
    for d in deltas:
        if merged and merged[-1].index == d.index and d.id is None:
            function = merged[-1].function or DeltaFunctionCall()
            function.arguments = (function.arguments or "") + d.arguments
            merged[-1].function = function
            continue
        merged.append(
            DeltaToolCall(
                index=d.index,
                id=d.id,
                type="function" if d.id else None,
                function=DeltaFunctionCall(name=d.name, arguments=d.arguments),
            )
        )
    return merged
