"""Reading the text in an image with a real OCR model: PP-OCRv4 text detection, then recognition of each line found,
as the ONNX models that ship inside the `rapidocr-onnxruntime` wheel, run by rapidocr's pipeline on onnxruntime.

`ImageTextReader` is what the rest of the service knows; `RapidOcrReader` is the one implementation. Its calls block
(hundreds of milliseconds to seconds of CPU): callers run them in a thread (reading.py does).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float  # the recognizer's confidence, 0 to 1
    box: tuple[tuple[float, float], ...]  # the line's corners in the image's pixels


class ImageTextReader(Protocol):
    name: str  # what /v1/models and the logs call the reader

    def load(self) -> None:
        """Load the models now (otherwise the first read does)."""

    def read(self, image: Image.Image) -> list[TextLine]:
        """The lines of text in an RGB image, top to bottom, left to right; blocking."""


class RapidOcrReader:
    """PP-OCRv4 detection and recognition (Chinese and English), angle classification off: text drawn upright is
    what screenshots and documents hold, and the classifier would cost a third model run per line."""

    name = "pp-ocrv4"

    def __init__(self, threads: int, max_side: int, min_score: float) -> None:
        self.threads = threads
        self.max_side = max_side
        self.min_score = min_score
        self._engine: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._engine is not None:
                return
            # Imported here: OpenCV and the models cost seconds and memory a service that never sees an image skips.
            from rapidocr_onnxruntime import RapidOCR

            self._engine = RapidOCR(
                intra_op_num_threads=self.threads,
                inter_op_num_threads=1,
                use_cls=False,
                # Detection runs on the image scaled so that its longer side is at most max_side; rapidocr's own
                # default scales the *shorter* side up to 736, which makes a wide screenshot cost seconds more.
                det_limit_type="max",
                det_limit_side_len=self.max_side,
                text_score=self.min_score,
            )
            logger.info("OCR models loaded (%s, %d threads)", self.name, self.threads)

    def read(self, image: Image.Image) -> list[TextLine]:
        self.load()
        result, _elapsed = self._engine(image)
        return [
            TextLine(text, float(score), tuple((float(x), float(y)) for x, y in box))
            for box, text, score in result or []
        ]
