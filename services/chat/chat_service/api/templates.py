"""/v1/prompt-templates: create, read, replace and delete named prompt templates, behind the admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from ortserve_common.admin_models import require_admin
from ortserve_common.protocol.prompt_templates import (
    TEMPLATE_NAME_PATTERN,
    PromptTemplate,
    PromptTemplateBody,
    PromptTemplateCreateRequest,
    PromptTemplateDeleted,
    PromptTemplateList,
)

from chat_service.dependencies import PromptTemplateServingDep

templates_router = APIRouter(
    prefix="/v1/prompt-templates", dependencies=[Depends(require_admin)], tags=["prompt templates"]
)
TemplateName = Annotated[str, Path(pattern=TEMPLATE_NAME_PATTERN)]


@templates_router.post("", response_model=PromptTemplate, status_code=201)
async def create_template(body: PromptTemplateCreateRequest, serving: PromptTemplateServingDep) -> PromptTemplate:
    return await serving.create(body)


@templates_router.get("", response_model=PromptTemplateList)
async def list_templates(serving: PromptTemplateServingDep) -> PromptTemplateList:
    return await serving.all()


@templates_router.get("/{name}", response_model=PromptTemplate)
async def retrieve_template(name: TemplateName, serving: PromptTemplateServingDep) -> PromptTemplate:
    return await serving.retrieve(name)


@templates_router.put("/{name}", response_model=PromptTemplate)
async def replace_template(
    name: TemplateName, body: PromptTemplateBody, serving: PromptTemplateServingDep
) -> PromptTemplate:
    return await serving.replace(name, body)


@templates_router.delete("/{name}", response_model=PromptTemplateDeleted)
async def delete_template(name: TemplateName, serving: PromptTemplateServingDep) -> PromptTemplateDeleted:
    return await serving.delete(name)
