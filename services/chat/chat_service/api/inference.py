"""HTTP routes: thin wrappers that hand wire models to the serving layer."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from ortserve_common.protocol.chat import ChatCompletionRequest, ChatCompletionResponse
from ortserve_common.protocol.common import ModelCard, ModelList
from ortserve_common.protocol.completions import CompletionRequest, CompletionResponse
from ortserve_common.protocol.tokenize import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from ortserve_common.sse import SSE_HEADERS, sse_stream

from chat_service.dependencies import (
    ChatServingDep,
    CompletionServingDep,
    ModelPoolDep,
    OwnerDep,
    PriorityDep,
    TokenizeServingDep,
)

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(
    request: ChatCompletionRequest, serving: ChatServingDep, owner: OwnerDep, priority: PriorityDep
) -> JSONResponse | StreamingResponse:
    result = await serving.create(request, owner, priority)
    if isinstance(result, ChatCompletionResponse):
        return JSONResponse(result.model_dump())
    return StreamingResponse(sse_stream(result), media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/v1/completions", response_model=CompletionResponse)
async def completions(
    request: CompletionRequest, serving: CompletionServingDep, owner: OwnerDep, priority: PriorityDep
) -> JSONResponse | StreamingResponse:
    result = await serving.create(request, owner, priority)
    if isinstance(result, CompletionResponse):
        return JSONResponse(result.model_dump())
    return StreamingResponse(sse_stream(result), media_type="text/event-stream", headers=SSE_HEADERS)


# llama-server's and vLLM's paths (no /v1 prefix); both take the model, or default to the main one.
@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(request: TokenizeRequest, serving: TokenizeServingDep) -> TokenizeResponse:
    # In a thread: the first call builds a tokenizer (the Hugging Face one, or llguidance's for token strings and
    # tools), which takes up to a second or two, and other streams must not wait for it.
    return await asyncio.to_thread(serving.tokenize, request)


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(request: DetokenizeRequest, serving: TokenizeServingDep) -> DetokenizeResponse:
    return await asyncio.to_thread(serving.detokenize, request)


@router.get("/v1/models", response_model=ModelList)
async def list_models(pool: ModelPoolDep) -> ModelList:
    return ModelList(data=pool.cards())


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, pool: ModelPoolDep) -> ModelCard:
    return pool.card(model_id)
