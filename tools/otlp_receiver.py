"""A small OTLP/HTTP trace receiver for local runs and tests: each span it is sent becomes one JSON line.

    python tools/otlp_receiver.py --port 4318 --out run/traces.jsonl

Point a service at it with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 (`ORTSERVE_TRACES=1 make run` does).
It takes `POST /v1/traces` as protobuf (what the Python exporter sends) or OTLP JSON, gzip or not, and answers
`GET /health`. Metrics and logs posts are accepted and dropped. No Jaeger or collector binary can be installed on
these machines; this is enough to read a trace with `jq` and for the tests to check one.

A line: {"trace_id", "span_id", "parent_span_id", "name", "kind", "service", "scope", "start_unix_nano",
"end_unix_nano", "duration_ms", "status": {"code", "message"}, "attributes": {...}, "events": [...]}; ids in hex.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import logging
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

logger = logging.getLogger("otlp_receiver")

_KINDS = {number: name.removeprefix("SPAN_KIND_").lower() for name, number in Span.SpanKind.items()}
_STATUS = {number: name.removeprefix("STATUS_CODE_").lower() for name, number in Status.StatusCode.items()}


def any_value(value: AnyValue) -> Any:
    """An OTLP attribute value as plain JSON."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def span_lines(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    lines = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                lines.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "kind": _KINDS.get(span.kind, str(span.kind)),
                        "service": resource.get("service.name"),
                        "scope": scope_spans.scope.name,
                        "start_unix_nano": span.start_time_unix_nano,
                        "end_unix_nano": span.end_time_unix_nano,
                        "duration_ms": round((span.end_time_unix_nano - span.start_time_unix_nano) / 1e6, 3),
                        "status": {"code": _STATUS.get(span.status.code, "unset"), "message": span.status.message},
                        "attributes": attributes(span.attributes),
                        "events": [{"name": e.name, "attributes": attributes(e.attributes)} for e in span.events],
                    }
                )
    return lines


def parse(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if content_type.startswith("application/json"):
        # OTLP JSON spells ids in hex where protobuf's JSON mapping expects base64: convert them first.
        data = json.loads(body)
        for resource_spans in data.get("resourceSpans", []):
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if span.get(key):
                            span[key] = _hex_to_base64(span[key])
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    else:
        request.ParseFromString(body)
    return request


def _hex_to_base64(text: str) -> str:
    return base64.b64encode(bytes.fromhex(text)).decode("ascii")


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], out: Path) -> None:
        super().__init__(address, Handler)
        self.out = out
        self.lock = threading.Lock()
        out.parent.mkdir(parents=True, exist_ok=True)

    def write(self, lines: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        with self.lock, self.out.open("a", encoding="utf-8") as f:  # one writer at a time keeps lines whole
            f.write(text)


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_GET(self) -> None:  # the http.server API
        self._reply(200 if self.path == "/health" else 404, b'{"status":"ok"}', "application/json")

    def do_POST(self) -> None:  # the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        content_type = self.headers.get("Content-Type") or "application/x-protobuf"
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if self.path != "/v1/traces":
                self._reply(200, b"", content_type)  # metrics and logs: accepted, not kept
                return
            lines = span_lines(parse(body, content_type))
        except Exception as exc:  # a bad body is the sender's problem: answer 400, keep serving
            logger.warning("bad export from %s: %r", self.client_address[0], exc)
            self._reply(400, str(exc).encode(), "text/plain")
            return
        self.server.write(lines)
        if content_type.startswith("application/json"):
            self._reply(200, b"{}", "application/json")
        else:
            self._reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the http.server signature
        logger.debug(format, *args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--out", type=Path, default=Path("run/traces.jsonl"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s otlp-receiver %(message)s")
    server = Receiver((args.host, args.port), args.out)
    logger.info("receiving OTLP/HTTP traces on http://%s:%d, writing %s", args.host, args.port, args.out)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
