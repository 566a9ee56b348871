"""Images: checked (type, bytes, pixels, base64, remote URLs) and read by the real PP-OCRv4 models of the
rapidocr-onnxruntime wheel, on images these tests render with Pillow in a known font."""

from __future__ import annotations

import asyncio
import base64
import functools
import http.server
import io
import re
import threading
from pathlib import Path

import pytest
from chat_service.vision import images
from chat_service.vision.images import ImageLimits
from chat_service.vision.ocr import RapidOcrReader, TextLine
from chat_service.vision.reading import ImageReading
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import ChatMessage
from ortserve_testing.images import data_url, render_text
from PIL import Image

LIMITS = ImageLimits(max_bytes=200_000, max_pixels=2_000_000, fetch_remote=False, fetch_timeout_s=2)
PARAM = "messages[0].content[1].image_url.url"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _refusal(url: str, limits: ImageLimits = LIMITS) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        asyncio.run(images.load(url, PARAM, limits))
    assert caught.value.status == 400 and caught.value.param == PARAM, caught.value.body()
    return caught.value


@pytest.mark.unit
@pytest.mark.parametrize("format,media_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_png_jpeg_and_webp_data_urls_are_taken(format: str, media_type: str) -> None:
    data = render_text(["hello"], format=format)
    image = asyncio.run(images.load(data_url(data, media_type), PARAM, LIMITS))
    assert (image.media_type, image.data) == (media_type, data)
    assert image.width > image.height > 0


@pytest.mark.unit
def test_bad_images_are_400s_naming_the_field() -> None:
    assert _refusal("data:image/png;base64,not base64!!").code == "invalid_base64"
    assert (
        _refusal("data:image/png;base64," + base64.b64encode(b"plain text, no image").decode()).code == "invalid_image"
    )
    assert _refusal("data:image/png,rawbytes").code == "invalid_image_url"  # not base64
    assert _refusal("ftp://example.com/a.png").code == "invalid_image_url"
    gif = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(gif, "GIF")
    refusal = _refusal(data_url(gif.getvalue(), "image/gif"))
    assert refusal.code == "unsupported_image_type" and "GIF" in refusal.message


@pytest.mark.unit
def test_size_and_pixel_limits() -> None:
    big = render_text(["x" * 40], size=200)  # a large canvas: more pixels than the limit
    assert _refusal(data_url(big), ImageLimits(10_000_000, 100_000, False, 2)).code == "image_too_large"
    # 400 megapixels: Pillow's own bomb guard stops it at open, and that too is a 400 image_too_large, not a 500.
    huge = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(huge, "PNG")
    assert _refusal(data_url(huge.getvalue()), ImageLimits(10_000_000, 100_000, False, 2)).code == "image_too_large"
    small_limit = ImageLimits(max_bytes=2048, max_pixels=10_000_000, fetch_remote=False, fetch_timeout_s=2)
    refusal = _refusal(data_url(render_text(["too many bytes here"])), small_limit)
    assert refusal.code == "image_too_large" and "2048 bytes" in refusal.message


@pytest.mark.unit
def test_remote_urls_are_refused_unless_allowed() -> None:
    refusal = _refusal("https://example.com/cat.png")
    assert refusal.code == "remote_image_refused" and "data URL" in refusal.message


class _FakeReader:
    """HTTP-free stand-in for the ordering and marker logic only; the reading itself is tested on the real model."""

    name = "fake"

    def load(self) -> None:
        pass

    def read(self, image: Image.Image) -> list[TextLine]:
        return [TextLine(f"{image.width}px", 1.0, ())]


def _message(role: str, *urls: str) -> ChatMessage:
    content = [{"type": "text", "text": "Look:"}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return ChatMessage.model_validate({"role": role, "content": content})


@pytest.mark.unit
def test_images_become_marked_text_in_their_place() -> None:
    reading = ImageReading(_FakeReader(), LIMITS, max_images=4, max_concurrent=1)
    one, two = data_url(render_text(["a"])), data_url(render_text(["a much wider line"]))
    messages = asyncio.run(reading.read_messages([_message("system"), _message("user", one, two)]))
    assert messages[1].images() == []
    parts = messages[1].content
    assert isinstance(parts, list) and [p.type for p in parts] == ["text", "text", "text"]
    assert messages[1].text().startswith("Look:\n[Text read from image 1 by OCR]:\n")
    assert "[Text read from image 2 by OCR]:" in messages[1].text()
    assert reading.capabilities == ["ocr"]


@pytest.mark.unit
def test_images_outside_user_messages_too_many_or_with_ocr_off_are_refused() -> None:
    url = data_url(render_text(["a"]))
    reading = ImageReading(_FakeReader(), LIMITS, max_images=1, max_concurrent=1)
    with pytest.raises(OpenAIError) as caught:
        asyncio.run(reading.read_messages([_message("assistant", url)]))
    assert caught.value.param == "messages[0].content[1].image_url.url"
    with pytest.raises(OpenAIError) as caught:
        asyncio.run(reading.read_messages([_message("user", url, url)]))
    assert (caught.value.code, caught.value.param) == ("too_many_images", "messages[0].content[2].image_url.url")
    off = ImageReading(None, LIMITS, max_images=1, max_concurrent=1)
    with pytest.raises(OpenAIError) as caught:
        asyncio.run(off.read_messages([_message("user", url)]))
    assert caught.value.code == "unsupported_parameter" and off.capabilities == []


@pytest.fixture(scope="module")
def reader() -> RapidOcrReader:
    """The real PP-OCRv4 models (tests that use it are marked `model`: they run real models for seconds)."""
    reader = RapidOcrReader(threads=2, max_side=960, min_score=0.5)
    reader.load()
    return reader


def _read(reader: RapidOcrReader, data: bytes) -> list[str]:
    checked = images.check(data, PARAM, ImageLimits(10_000_000, 10_000_000, False, 2))
    return [line.text for line in reader.read(images.rgb_pixels(checked))]


@pytest.mark.model
@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP"])
def test_the_ocr_model_reads_the_words_drawn(reader: RapidOcrReader, format: str) -> None:
    lines = _read(reader, render_text(["The parrot is named Kiwi"], format=format))
    assert _words(" ".join(lines)) == ["the", "parrot", "is", "named", "kiwi"], lines


@pytest.mark.model
def test_lines_come_back_top_to_bottom_and_clear_backgrounds_are_read(reader: RapidOcrReader) -> None:
    lines = _read(reader, render_text(["Invoice 4417", "Total due 93 EUR"], mode="RGBA"))
    assert [_words(line) for line in lines] == [["invoice", "4417"], ["total", "due", "93", "eur"]], lines


@pytest.mark.model
def test_a_blank_image_has_no_text(reader: RapidOcrReader) -> None:
    blank = io.BytesIO()
    Image.new("RGB", (400, 200), "white").save(blank, "PNG")
    assert _read(reader, blank.getvalue()) == []


@pytest.mark.model
def test_reading_a_message_on_the_real_model(reader: RapidOcrReader) -> None:
    reading = ImageReading(reader, LIMITS, max_images=2, max_concurrent=1)
    [message] = asyncio.run(reading.read_messages([_message("user", data_url(render_text(["Meet at Pier 7"])))]))
    assert message.text().startswith("Look:\n[Text read from image 1 by OCR]:\n")
    assert _words(message.text().split(":\n", 2)[-1]) == ["meet", "at", "pier", "7"], message.text()


@pytest.mark.unit
def test_remote_urls_are_fetched_where_allowed(tmp_path: Path) -> None:
    """A real HTTP server on localhost: the image comes back checked; a missing one and an oversized one are 400s."""
    data = render_text(["fetched"])
    (tmp_path / "sign.png").write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    allowed = ImageLimits(max_bytes=200_000, max_pixels=2_000_000, fetch_remote=True, fetch_timeout_s=10)
    try:
        image = asyncio.run(images.load(f"{base}/sign.png", PARAM, allowed))
        assert (image.data, image.media_type) == (data, "image/png")
        assert _refusal(f"{base}/missing.png", allowed).code == "image_fetch_failed"
        tight = ImageLimits(max_bytes=len(data) - 1, max_pixels=2_000_000, fetch_remote=True, fetch_timeout_s=10)
        assert _refusal(f"{base}/sign.png", tight).code == "image_too_large"
    finally:
        server.shutdown()
        server.server_close()
