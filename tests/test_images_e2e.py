"""Images through nginx over TLS with the official SDKs: text the test draws is read by the chat service's real OCR
model and a question about it is answered by Qwen2.5-Coder-0.5B (OpenAI SDK on chat completions and responses,
anthropic SDK on /v1/messages); the registry's model card says `ocr`; refusals keep each API's error shape; an image
body larger than the general body limit passes the proxy on the image routes."""

from __future__ import annotations

import base64

import anthropic
import openai
import pytest
from ortserve_testing.images import data_url, render_text
from stack_testing import Stack

QWEN = "qwen2.5-coder-0.5b-instruct"
SENTENCE = "The secret password is TULIP"
QUESTION = "What is the secret password in the image? Answer with the password only."
MAX_BODY = 8 * 1024 * 1024  # PROXY_MAX_BODY's default; the image routes take PROXY_MAX_IMAGE_BODY (32m)


def _claude(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=stack.base_url,
        api_key=stack.api_key,
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(verify=stack.ssl_context(), timeout=120),
    )


def _ask(url: str) -> list[dict]:
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}]
    return [{"role": "user", "content": content}]


def test_the_registry_card_says_ocr(stack: Stack) -> None:
    card = stack.openai().models.retrieve(QWEN).model_dump()
    assert card["capabilities"] == ["ocr"], card


def test_chat_and_responses_answer_from_an_images_text(stack: Stack) -> None:
    client = stack.openai()
    url = data_url(render_text([SENTENCE]))
    reply = client.chat.completions.create(model=QWEN, messages=_ask(url), temperature=0, max_tokens=16)
    assert "tulip" in (reply.choices[0].message.content or "").lower(), reply
    content = [{"type": "input_image", "image_url": url}, {"type": "input_text", "text": QUESTION}]
    response = client.responses.create(
        model=QWEN, input=[{"role": "user", "content": content}], temperature=0, max_output_tokens=16
    )
    assert "tulip" in response.output_text.lower(), response.output_text


def test_anthropic_sdk_image_block_is_read(stack: Stack) -> None:
    data = base64.b64encode(render_text([SENTENCE], format="JPEG")).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}}
    message = _claude(stack).messages.create(
        model=QWEN,
        max_tokens=16,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": QUESTION}]}],
        extra_body={"temperature": 0},
    )
    assert "tulip" in message.content[0].text.lower(), message.content


def test_refusals_keep_each_apis_shape(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        stack.openai().chat.completions.create(model=QWEN, messages=_ask("https://example.com/a.png"), max_tokens=4)
    error = refused.value.body
    assert isinstance(error, dict), error
    assert (error["code"], error["param"]) == ("remote_image_refused", "messages[0].content[0].image_url.url")
    bad = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "@@not base64@@"}}
    with pytest.raises(anthropic.BadRequestError) as anthropic_refused:
        _claude(stack).messages.create(model=QWEN, max_tokens=4, messages=[{"role": "user", "content": [bad]}])
    body = anthropic_refused.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "invalid_request_error" and "base64" in body["error"]["message"]


def test_an_image_body_over_the_general_limit_reaches_the_service(stack: Stack) -> None:
    """A body over PROXY_MAX_BODY passes on the chat route (its own, larger limit) and the service judges the image:
    here, 9 MB of base64 that is no image. Past PROXY_MAX_IMAGE_BODY it is nginx's 413, which names that limit."""
    filler = base64.b64encode(b"\0" * (MAX_BODY // 4 * 3 + 1024 * 1024)).decode()
    with pytest.raises(openai.BadRequestError) as refused:
        stack.openai().chat.completions.create(
            model=QWEN, messages=_ask(f"data:image/png;base64,{filler}"), max_tokens=4
        )
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "invalid_image", refused.value.body
    with stack.http() as http:  # HTTP/1.1: over HTTP/2 an early 413 can surface as a client read timeout
        response = http.post(
            "/v1/chat/completions",
            content=b"{" + b" " * (33 * 1024 * 1024) + b"}",
            headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["message"] == "Request body too large: the limit is 32m."
