"""POST /tokenize and /detokenize: text or chat messages → token ids, and back (no generation, no admission)."""

from __future__ import annotations

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.protocol.tokenize import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)

from chat_service.engine.protocol import ChatEngine
from chat_service.engine.vocabulary import Vocabulary
from chat_service.models.pool import ModelPool
from chat_service.serving.chat_prompt import render_chat_prompt
from chat_service.tools.request import plan_tools


class TokenizeServing:
    def __init__(self, pool: ModelPool) -> None:
        self.pool = pool

    def _engine(self, name: str | None) -> ChatEngine:
        """The named model (id or alias), or the first one served when the request names none."""
        return (self.pool.model(name) if name else self.pool.first()).engine

    def tokenize(self, request: TokenizeRequest) -> TokenizeResponse:
        engine = self._engine(request.model)
        vocabulary = _vocabulary(engine)
        given = [name for name in ("prompt", "content", "messages") if getattr(request, name) is not None]
        if len(given) != 1:
            raise invalid_request("Give exactly one of prompt, content or messages.", given[1] if given else "prompt")
        if request.messages is not None:
            # An image's text is only known once OCR has read it, which this endpoint does not do.
            with_image = next((i for i, message in enumerate(request.messages) if message.images()), None)
            if with_image is not None:
                refusal = "/tokenize takes no images; /v1/messages/count_tokens counts a prompt with its images read."
                raise invalid_request(refusal, f"messages[{with_image}].content", "unsupported_parameter")
            plan = plan_tools(request.tools, request.tool_choice, vocabulary)
            text = render_chat_prompt(engine.tokenizer, request.messages, plan, request.add_generation_prompt)
        else:
            text = request.prompt if request.prompt is not None else request.content or ""
        # Unset: exactly the ids generation would see for this text (the prompt_tokens of a completion).
        if request.add_special_tokens is None:
            tokens = engine.tokenizer.encode(text)
        else:
            tokens = vocabulary.encode(text, request.add_special_tokens)
        return TokenizeResponse(
            count=len(tokens),
            max_model_len=engine.context_length,
            tokens=tokens,
            token_strs=[vocabulary.token_text(t) for t in tokens] if request.return_token_strs else None,
        )

    def detokenize(self, request: DetokenizeRequest) -> DetokenizeResponse:
        vocabulary = _vocabulary(self._engine(request.model))
        for i, token in enumerate(request.tokens):
            if not 0 <= token < vocabulary.size:
                raise invalid_request(
                    f"Token id {token} is outside the vocabulary (0-{vocabulary.size - 1}).", f"tokens[{i}]"
                )
        text = vocabulary.decode(request.tokens)
        return DetokenizeResponse(prompt=text, content=text)


def _vocabulary(engine: ChatEngine) -> Vocabulary:
    vocabulary = engine.tokenizer.vocabulary
    if vocabulary is None:
        raise OpenAIError(400, "This model's vocabulary is not known to the server.", param="model", code="unsupported")
    return vocabulary
