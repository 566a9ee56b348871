"""JSON log lines, and the per-request record that the access log line is built from."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from ortserve_common.telemetry import current_trace_ids

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# Mutable on purpose: the serving layer adds fields (model, tokens, ttft) that the access log line reports at the end.
request_fields_var: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "request_fields", default=None
)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        # Only inside a span, so lines outside requests carry no empty ids; the JSON formatter emits extra attributes.
        ids = current_trace_ids()
        if ids is not None and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = ids
        return True


def configure_logging(level: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware writes one richer line per request; uvicorn's own access line would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True


def record_request_fields(**fields: Any) -> None:
    """Attach fields to the current request's access log line (no-op outside a request)."""
    current = request_fields_var.get()
    if current is not None:
        current.update(fields)
