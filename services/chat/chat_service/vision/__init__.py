"""Images in requests: decoded and checked (images.py), their text read by OCR (ocr.py, reading.py)."""
