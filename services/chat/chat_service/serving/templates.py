"""/v1/prompt-templates: named system prompts with default parameters (no HTTP here)."""

from __future__ import annotations

from anyio import to_thread
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import ChatCompletionRequest, ChatMessage
from ortserve_common.protocol.prompt_templates import (
    PromptTemplate,
    PromptTemplateBody,
    PromptTemplateCreateRequest,
    PromptTemplateDeleted,
    PromptTemplateList,
)

from chat_service.conversations.store.templates import PromptTemplateStore, TemplateExists, TemplateRecord


def template_not_found(name: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(
        404, f"No prompt template named '{name}'.", "invalid_request_error", param, "prompt_template_not_found"
    )


def _template(record: TemplateRecord) -> PromptTemplate:
    return PromptTemplate(
        name=record.name,
        description=record.description,
        system_prompt=record.system_prompt,
        parameters=record.parameters,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class PromptTemplateServing:
    def __init__(self, store: PromptTemplateStore) -> None:
        self.store = store

    async def create(self, body: PromptTemplateCreateRequest) -> PromptTemplate:
        parameters = body.parameters.model_dump(exclude_none=True)
        try:
            record = await to_thread.run_sync(
                self.store.create, body.name, body.description, body.system_prompt, parameters
            )
        except TemplateExists:
            raise OpenAIError(
                409,
                f"A prompt template named '{body.name}' already exists.",
                "invalid_request_error",
                "name",
                "already_exists",
            ) from None
        return _template(record)

    async def replace(self, name: str, body: PromptTemplateBody) -> PromptTemplate:
        parameters = body.parameters.model_dump(exclude_none=True)
        record = await to_thread.run_sync(self.store.replace, name, body.description, body.system_prompt, parameters)
        if record is None:
            raise template_not_found(name)
        return _template(record)

    async def retrieve(self, name: str, param: str | None = None) -> PromptTemplate:
        record = await to_thread.run_sync(self.store.get, name)
        if record is None:
            raise template_not_found(name, param)
        return _template(record)

    async def all(self) -> PromptTemplateList:
        return PromptTemplateList(data=[_template(r) for r in await to_thread.run_sync(self.store.all)])

    async def delete(self, name: str) -> PromptTemplateDeleted:
        if not await to_thread.run_sync(self.store.delete, name):
            raise template_not_found(name)
        return PromptTemplateDeleted(name=name)

    async def apply(self, request: ChatCompletionRequest) -> tuple[ChatCompletionRequest, list[ChatMessage]]:
        """The request with the template's parameters wherever it set none, and the messages that go first: the
        template's system prompt (before any conversation history, and never stored in one)."""
        if request.prompt_template is None:
            return request, []
        template = await self.retrieve(request.prompt_template, "prompt_template")
        update = {
            key: value
            for key, value in template.parameters.items()
            if key not in request.model_fields_set or getattr(request, key) is None
        }
        return request.model_copy(update=update), [ChatMessage(role="system", content=template.system_prompt)]
