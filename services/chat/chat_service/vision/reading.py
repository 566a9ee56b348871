"""Images in a request → the text an OCR model reads in them, in the image's place, with a plain marker saying so:
the models served here read text only, so this is all they can be given of an image, and they are told where it
came from. Checked first (type, size, pixels: images.py), read off the event loop, a few at a time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.protocol.chat import ChatMessage, ContentPart, ImageUrlContentPart, TextContentPart

from chat_service.vision import images
from chat_service.vision.images import CheckedImage, ImageLimits
from chat_service.vision.ocr import ImageTextReader

logger = logging.getLogger(__name__)

CAPABILITY = "ocr"  # on the model card: images are taken, and only the text in them is read


def marker(number: int, lines: list[str]) -> str:
    if not lines:
        return f"[Image {number}: OCR found no text in it]"
    return f"[Text read from image {number} by OCR]:\n" + "\n".join(lines)


class ImageReading:
    def __init__(
        self, reader: ImageTextReader | None, limits: ImageLimits, max_images: int, max_concurrent: int
    ) -> None:
        self.reader = reader  # None: OCR is off and images are refused
        self.limits = limits
        self.max_images = max_images
        self._slots = asyncio.Semaphore(max_concurrent)  # OCR is CPU-bound: a few at a time, the rest wait

    @property
    def capabilities(self) -> list[str]:
        return [CAPABILITY] if self.reader is not None else []

    async def read_messages(self, messages: list[ChatMessage], where: str = "messages") -> list[ChatMessage]:
        """The messages with each image_url part replaced by a text part holding what OCR read in it."""
        found = [
            (i, j, part, part.param or f"{where}[{i}].content[{j}].image_url.url")
            for i, message in enumerate(messages)
            if isinstance(message.content, list)
            for j, part in enumerate(message.content)
            if isinstance(part, ImageUrlContentPart)
        ]
        if not found:
            return messages
        for i, _, _, param in found:
            if messages[i].role != "user":
                raise invalid_request("Images are accepted in user messages only.", param)
        texts = await self._read_all([(part.image_url.url, param) for _, _, part, param in found])
        read: dict[tuple[int, int], str] = {(i, j): text for (i, j, _, _), text in zip(found, texts, strict=True)}
        result = []
        for i, message in enumerate(messages):
            if not message.images():
                result.append(message)
                continue
            assert isinstance(message.content, list)
            content: list[ContentPart] = [
                TextContentPart(type="text", text=read[(i, j)]) if isinstance(part, ImageUrlContentPart) else part
                for j, part in enumerate(message.content)
            ]
            result.append(message.model_copy(update={"content": content}))
        return result

    async def read_items(self, items: list[dict[str, Any]], where: str = "input") -> list[dict[str, Any]]:
        """Responses' stored input items with each input_image part replaced by an input_text part, so what is
        stored (and listed by /input_items) is what the model read."""
        found = []
        for i, item in enumerate(items):
            parts = item.get("content") if item.get("type") == "message" else None
            for j, part in enumerate(parts if isinstance(parts, list) else []):
                if part.get("type") == "input_image":
                    param = f"{where}[{i}].content[{j}]"
                    if item.get("role") != "user":
                        raise invalid_request("Images are accepted in user messages only.", param)
                    url = part.get("image_url")
                    if not isinstance(url, str):
                        message = "input_image needs image_url (a data URL); file_id is not supported here."
                        raise invalid_request(message, f"{param}.image_url", "unsupported_parameter")
                    found.append((i, j, url, f"{param}.image_url"))
        if not found:
            return items
        texts = await self._read_all([(url, param) for _, _, url, param in found])
        items = [
            {**item, "content": list(item["content"])} if item.get("type") == "message" else item for item in items
        ]
        for (i, j, _, _), text in zip(found, texts, strict=True):
            items[i]["content"][j] = {"type": "input_text", "text": text}
        return items

    async def _read_all(self, sources: list[tuple[str, str]]) -> list[str]:
        if self.reader is None:
            message = "This server reads no images (its OCR is turned off: CHAT_OCR=off); send text."
            raise invalid_request(message, sources[0][1], "unsupported_parameter")
        if len(sources) > self.max_images:
            message = f"At most {self.max_images} images are read per request; this one has {len(sources)}."
            raise invalid_request(message, sources[self.max_images][1], "too_many_images")
        # Every image is checked before any is read: a bad last image fails the request at once.
        checked = [await images.load(url, param, self.limits) for url, param in sources]
        texts = []
        for number, (image, (_, param)) in enumerate(zip(checked, sources, strict=True), start=1):
            lines = await self._read(image, param)
            texts.append(marker(number, lines))
        return texts

    async def _read(self, image: CheckedImage, param: str) -> list[str]:
        reader = self.reader
        assert reader is not None

        def read() -> list[str]:
            try:
                pixels = images.rgb_pixels(image)
            except (OSError, ValueError) as exc:  # a header that promised more than the file holds
                raise invalid_request(f"The image could not be decoded: {exc}.", param, "invalid_image") from None
            return [line.text for line in reader.read(pixels)]

        async with self._slots:
            try:
                return await asyncio.to_thread(read)
            except OpenAIError:
                raise
            except Exception:
                logger.exception("OCR failed on a %s image of %dx%d", image.media_type, image.width, image.height)
                raise OpenAIError(
                    500, "Reading the image's text failed.", "server_error", param, "ocr_failed"
                ) from None


# No OCR (the HTTP-layer tests' services): every image is refused in words.
NO_IMAGES = ImageReading(None, ImageLimits(0, 0, False, 1.0), max_images=1, max_concurrent=1)
