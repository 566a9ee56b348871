"""A stand-in for the proxy on loopback, plain HTTP: just enough of chat (streamed and not), completions, embeddings
and rerank for the Locust scenarios to run against, with every request's path and model recorded. No model, no
timing: the load test's own plumbing is what the tests look at."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOrtserve(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, bool]] = []  # (path, model, stream)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOrtserve

    def log_message(self, *_args: object) -> None:  # quiet: the test reads `seen`
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, body.get("model", ""), bool(body.get("stream"))))
        if self.path == "/v1/chat/completions" and body.get("stream"):
            return self._stream()
        if self.path == "/v1/chat/completions":
            return self._json({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}}]})
        if self.path == "/v1/completions":
            return self._json({"choices": [{"index": 0, "text": " three"}]})
        if self.path == "/v1/embeddings":
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return self._json({"data": [{"index": i, "embedding": [0.0, 1.0]} for i in range(len(texts))]})
        if self.path == "/v1/rerank":
            return self._json(
                {"results": [{"index": i, "relevance_score": 0.5} for i in range(len(body["documents"]))]}
            )
        return self._json({"error": {"message": "no such path"}}, 404)

    def _json(self, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        chunks = [
            {"choices": [{"index": 0, "delta": {"content": word}}]} for word in ("The", " capital", " is", " Paris")
        ]
        chunks.append({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})
        events = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(events)))
        self.end_headers()
        self.wfile.write(events)


@contextmanager
def fake_ortserve() -> Iterator[FakeOrtserve]:
    server = FakeOrtserve()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
