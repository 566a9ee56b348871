"""preStop drain for chat and embeddings: let the requests in flight finish before the kubelet sends SIGTERM.

    python /etc/ortserve/drain/drain.py --port 8000 --settle 10 --max-wait 75

A terminating pod leaves the Service's endpoints at once, but nginx learns of it only through DNS (the headless
Service's 5 s TTL, then nginx's own `resolver valid=5s`), so new requests can still arrive for about 10 s: wait
`--settle` seconds first. Then wait while the service's own gauges (ortserve_requests_running and
ortserve_requests_waiting on /metrics) are above 0, for at most `--max-wait` seconds in all. SIGTERM follows, and
the service's own SIGTERM drain (uvicorn's graceful shutdown, 30 s) ends whatever is left. Stdlib only: it runs in
the image.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request

GAUGES = ("ortserve_requests_running", "ortserve_requests_waiting")


def in_flight(port: int) -> float:
    """Requests holding or waiting for a slot; 0 when /metrics cannot be read (nothing to wait for then)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GAUGES:
            total += float(value)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wait for in-flight requests before SIGTERM.")
    parser.add_argument("--port", type=int, required=True, help="the service's own port (its /metrics)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds for the endpoint removal to reach nginx")
    parser.add_argument("--max-wait", type=float, default=60.0, help="most seconds in all, settle included")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two looks at /metrics")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.max_wait
    time.sleep(min(args.settle, args.max_wait))
    while time.monotonic() < deadline and in_flight(args.port) > 0:
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
