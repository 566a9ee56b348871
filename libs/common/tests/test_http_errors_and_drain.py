"""The shared HTTP layer: strict request types, unreadable bodies, 405 with a full Allow, the OpenAPI error schema,
and readiness that turns false when a drain starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from ortserve_common.app import create_service_app
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import ChatCompletionRequest
from ortserve_common.server import is_draining, on_drain
from pydantic import ValidationError

router = APIRouter()


@router.get("/items/{item_id}")
async def get_item(item_id: str) -> dict[str, str]:
    return {"id": item_id}


@router.post("/items/{item_id}")
async def post_item(item_id: str, body: ChatCompletionRequest) -> dict[str, str]:
    return {"id": item_id, "model": body.model}


@router.put("/items/special")
async def put_special() -> dict[str, str]:
    return {"id": "special"}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_service_app("test", _lifespan, [router], lambda app: True, "test"))


@pytest.mark.parametrize("field", [{"temperature": "0.5"}, {"max_tokens": "5"}, {"stream": "true"}, {"n": 1.5}])
def test_numbers_and_booleans_as_strings_are_refused(field: dict) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}], **field})
    ok = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 1}
    )
    assert ok.top_p == 1.0  # an integer is still a number


@pytest.mark.parametrize("body", [b'{"model": "\xff"}', b"[" * 50_000 + b"]" * 50_000])
def test_a_body_that_cannot_be_read_is_invalid_json(client: TestClient, body: bytes) -> None:
    response = client.post("/items/1", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("DELETE", "/items/1")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_405_on_a_literal_path_lists_its_own_methods_not_a_templates(client: TestClient) -> None:
    """/items/special is a route of its own: OpenAPI documents PUT there, though /items/{item_id} matches it too."""
    response = client.request("DELETE", "/items/special")
    assert response.status_code == 405 and response.headers["allow"] == "PUT"


def test_a_prefix_may_answer_the_routers_refusals_in_a_shape_of_its_own() -> None:
    def shaped(exc: OpenAIError) -> JSONResponse:
        return JSONResponse({"type": "error", "message": exc.message}, status_code=exc.status, headers=exc.headers)

    app = create_service_app("test", _lifespan, [router], lambda app: True, "test", error_renderers={"/items": shaped})
    client = TestClient(app)
    refused = client.request("TRACE", "/items/1")
    assert refused.status_code == 405 and refused.json()["type"] == "error"
    assert refused.headers["allow"] == "GET, POST"
    assert client.get("/items").json()["type"] == "error"  # the prefix itself, an unknown path: 404
    assert client.get("/itemsx").json()["error"]["code"] == "not_found"  # not under the prefix: OpenAI's shape


def test_openapi_documents_the_openai_error_not_422(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/items/{item_id}"]["post"]["responses"]
    assert "422" not in responses
    assert responses["default"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_readiness_is_false_while_draining(client: TestClient) -> None:
    with client:
        assert client.get("/ready").status_code == 200
        client.app.state.draining = True
        response = client.get("/ready")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    assert is_draining(client.app)


def test_drain_hooks_are_kept_in_order() -> None:
    app = FastAPI()
    calls: list[str] = []

    async def first() -> None:
        calls.append("first")

    async def second() -> None:
        calls.append("second")

    on_drain(app, first)
    on_drain(app, second)
    for hook in app.state.drain_hooks:
        asyncio.run(hook())
    assert calls == ["first", "second"]
