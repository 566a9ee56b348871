"""The shared HTTP layer: strict request types, unreadable bodies, 405 with a full Allow, the OpenAPI error schema,
and readiness that turns false when a drain starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from ortserve_common.app import create_service_app
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
