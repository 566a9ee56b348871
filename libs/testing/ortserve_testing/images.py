"""Images the tests render: text drawn with Pillow in a known font, as PNG, JPEG or WebP bytes and data URLs, for the
OCR tests (the chat service reads them with a real OCR model)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Debian's DejaVu Sans where it is installed (fonts-dejavu-core), else Pillow's own default font (Aileron), scaled.
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def font(size: int = 48) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if DEJAVU.exists():
        return ImageFont.truetype(str(DEJAVU), size)
    return ImageFont.load_default(size=size)


def render_text(lines: list[str], size: int = 48, format: str = "PNG", mode: str = "RGB") -> bytes:
    """Black text on white (on clear, for mode RGBA), one line under the other, with a margin."""
    drawn_font = font(size)
    widths = [int(drawn_font.getlength(line)) for line in lines]
    width, line_height = max(widths) + 2 * size, int(size * 1.6)
    image = Image.new(
        mode, (width, line_height * len(lines) + 2 * size), (255, 255, 255, 0) if mode == "RGBA" else "white"
    )
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size, size + i * line_height), line, fill="black", font=drawn_font)
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"
