"""Images end to end on the chat service: text drawn by the test, read by the real PP-OCRv4 models, and a question
about it answered by the real Qwen2.5-Coder-0.5B, on chat completions, responses and /v1/messages; the model card
says `ocr`; bad images are 400s naming their field."""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Iterator

import httpx
import openai
import pytest
from chat_testing import MODELS_DIR, ChatServer
from ortserve_testing.images import data_url, render_text
from PIL import Image

pytestmark = pytest.mark.model  # starts a chat service of its own on Qwen, with the real OCR models

QWEN_ID = "qwen2.5-coder-0.5b-instruct"
QWEN = MODELS_DIR / QWEN_ID
MAX_IMAGE_BYTES = 300_000
# A short sentence, and a question whose answer is one word of it that no model would guess.
SENTENCE = "The secret password is TULIP"
QUESTION = "What is the secret password in the image? Answer with the password only."
GREEDY = {"temperature": 0, "max_tokens": 16}


@pytest.fixture(scope="module")
def server() -> Iterator[ChatServer]:
    if not (QWEN / ".complete").exists():
        pytest.fail(f"model {QWEN} is not built; run `make model` (make test does it for you)")
    server = ChatServer(
        QWEN,
        CHAT_MODEL_ID=QWEN_ID,
        CHAT_MAX_MODEL_LEN="2048",
        CHAT_MAX_BATCH_SIZE="2",
        CHAT_OCR="startup",
        CHAT_IMAGE_MAX_BYTES=str(MAX_IMAGE_BYTES),
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: ChatServer) -> openai.OpenAI:
    return server.client()


def _image_message(url: str) -> dict:
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}],
    }


def _noise_png(side: int) -> bytes:
    """Random pixels: a PNG that does not compress, so its size is known to be large."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_the_model_card_says_ocr(client: openai.OpenAI) -> None:
    [card] = client.models.list().data
    assert card.model_dump()["capabilities"] == ["ocr"]
    assert client.models.retrieve(QWEN_ID).model_dump()["capabilities"] == ["ocr"]


def test_a_question_about_an_image_is_answered_from_its_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=QWEN_ID, messages=[_image_message(data_url(render_text([SENTENCE])))], **GREEDY
    )
    answer = reply.choices[0].message.content or ""
    assert "tulip" in answer.lower(), answer
    # The prompt holds the OCR text with its marker: far more tokens than the question alone.
    assert reply.usage is not None and reply.usage.prompt_tokens > 40


def test_jpeg_and_webp_are_read_too(client: openai.OpenAI) -> None:
    for format, media_type in (("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        url = data_url(render_text([SENTENCE], format=format), media_type)
        reply = client.chat.completions.create(model=QWEN_ID, messages=[_image_message(url)], **GREEDY)
        assert "tulip" in (reply.choices[0].message.content or "").lower(), (format, reply)


def test_responses_input_image_is_read_and_stored_as_its_text(client: openai.OpenAI) -> None:
    image = {"type": "input_image", "image_url": data_url(render_text([SENTENCE]))}
    content = [image, {"type": "input_text", "text": QUESTION}]
    response = client.responses.create(
        model=QWEN_ID, input=[{"role": "user", "content": content}], temperature=0, max_output_tokens=16
    )
    assert "tulip" in response.output_text.lower(), response.output_text
    [item] = client.responses.input_items.list(response.id).data
    first = item.model_dump()["content"][0]
    assert first["type"] == "input_text" and first["text"].startswith("[Text read from image 1 by OCR]:")
    assert "TULIP" in first["text"].upper()


def test_messages_image_block_is_read(server: ChatServer) -> None:
    data = base64.b64encode(render_text([SENTENCE])).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    body = {
        "model": QWEN_ID,
        "max_tokens": 16,
        "temperature": 0,
        "messages": [{"role": "user", "content": [image, {"type": "text", "text": QUESTION}]}],
    }
    reply = httpx.post(server.base_url + "/v1/messages", json=body, timeout=120).json()
    assert "tulip" in reply["content"][0]["text"].lower(), reply


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64,%%%notbase64", "invalid_base64"),
        ("https://example.com/sign.png", "remote_image_refused"),
        (data_url(render_text(["gif"], format="GIF"), "image/gif"), "unsupported_image_type"),
        (data_url(_noise_png(400)), "image_too_large"),
    ],
)
def test_bad_images_are_400s_naming_the_field(client: openai.OpenAI, url: str, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=QWEN_ID, messages=[_image_message(url)], **GREEDY)
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == code, error
    assert error["param"] == "messages[0].content[0].image_url.url" and error["type"] == "invalid_request_error"
