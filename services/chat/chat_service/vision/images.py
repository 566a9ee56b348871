"""An image as a request gives it (a data URL, or an http(s) URL where fetching is allowed) → checked bytes: a PNG,
JPEG or WebP within the size and pixel limits. Every refusal is a 400 naming the field the image came in. No HTTP
framework here; fetching uses httpx.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

import httpx
from ortserve_common.errors import invalid_request
from PIL import Image, UnidentifiedImageError

# Pillow's format names → the media types clients send; nothing else is taken.
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<base64>;base64)?,", re.I)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int  # the decoded file
    max_pixels: int  # width × height
    fetch_remote: bool
    fetch_timeout_s: float


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    media_type: str
    width: int
    height: int


def _refuse(message: str, param: str, code: str = "invalid_image") -> Exception:
    return invalid_request(message, param, code)


def decode_data_url(url: str, param: str, limits: ImageLimits) -> bytes:
    match = _DATA_URL.match(url)
    if match is None or not match.group("base64"):
        raise _refuse("An image must be a base64 data URL (data:image/png;base64,...).", param, "invalid_image_url")
    encoded = url[match.end() :]
    # base64 takes 4 characters for 3 bytes: refuse an oversized image before decoding it.
    if len(encoded) // 4 * 3 > limits.max_bytes + 3:
        raise _refuse(
            f"The image is larger than this server's limit of {limits.max_bytes} bytes.", param, "image_too_large"
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("The image's data URL does not hold valid base64.", param, "invalid_base64") from None


async def fetch(url: str, param: str, limits: ImageLimits) -> bytes:
    """An http(s) image, read at most max_bytes far; only where the fetch_remote setting allows it."""
    if not limits.fetch_remote:
        raise _refuse(
            "Remote image URLs are not fetched by this server; send the image as a base64 data URL "
            "(data:image/png;base64,...).",
            param,
            "remote_image_refused",
        )
    try:
        async with httpx.AsyncClient(timeout=limits.fetch_timeout_s, follow_redirects=True) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _refuse(f"Fetching the image gave HTTP {response.status_code}.", param, "image_fetch_failed")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limits.max_bytes:
                        raise _refuse(
                            f"The image is larger than this server's limit of {limits.max_bytes} bytes.",
                            param,
                            "image_too_large",
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise _refuse(
            f"The image could not be fetched: {exc.__class__.__name__}.", param, "image_fetch_failed"
        ) from None


async def load(url: str, param: str, limits: ImageLimits) -> CheckedImage:
    """The image behind `url`, its type and size checked from its header (the pixels are decoded later, by OCR)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "data":
        data = decode_data_url(url, param, limits)
    elif scheme in ("http", "https"):
        data = await fetch(url, param, limits)
    else:
        raise _refuse(
            "An image URL must be a base64 data URL (or, where allowed, http(s)).", param, "invalid_image_url"
        )
    return check(data, param, limits)


def check(data: bytes, param: str, limits: ImageLimits) -> CheckedImage:
    if len(data) > limits.max_bytes:
        raise _refuse(
            f"The image is larger than this server's limit of {limits.max_bytes} bytes.", param, "image_too_large"
        )
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            kind, (width, height) = image.format, image.size
    except Image.DecompressionBombError:  # Pillow's own guard, at twice its 89-megapixel default
        message = f"The image has more pixels than this server's limit of {limits.max_pixels}."
        raise _refuse(message, param, "image_too_large") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise _refuse("The image could not be read: send a PNG, JPEG or WebP file.", param) from None
    if kind not in MEDIA_TYPES:
        raise _refuse(f"Unsupported image type {kind}: send a PNG, JPEG or WebP file.", param, "unsupported_image_type")
    if width * height > limits.max_pixels:
        message = f"The image has {width}×{height} pixels, more than this server's limit of {limits.max_pixels}."
        raise _refuse(message, param, "image_too_large")
    return CheckedImage(data, MEDIA_TYPES[kind], width, height)


def rgb_pixels(image: CheckedImage) -> Image.Image:
    """The decoded image as RGB, transparency laid on white (dark text on a clear background stays readable)."""
    with Image.open(io.BytesIO(image.data)) as opened:
        opened.load()
        if opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info:
            rgba = opened.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        return opened.convert("RGB")
