"""`make loadtest` / `make loadtest-ui`: Locust against ortserve, always as a subprocess (gevent must patch first).

    python -m loadtest.run                     # headless, 60 s, 8 MixedUsers, on a stack of its own (free ports)
    python -m loadtest.run --host URL --ca PEM --api-key KEY --run-time 10s StreamingChatUser
    python -m loadtest.run --ui                # web UI on 127.0.0.1:8089 against the local stack (./run, port 8443)

Headless runs are bounded (--run-time) and write Locust's CSV files and HTML report under
results/loadtest/<time>/; the exit status is Locust's (1 if any request failed).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from contextlib import nullcontext
from pathlib import Path

from bench.local_stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
USER_CLASSES = ["StreamingChatUser", "ChatUser", "CompletionsUser", "EmbeddingsUser", "RerankUser", "MixedUser"]
logger = logging.getLogger("loadtest")


def local_stack_credentials() -> tuple[str, str, str]:
    """The stack `make up` runs (ORTSERVE_RUN_DIR, PROXY_HTTPS_PORT), started now if it is not up."""
    run_dir = Path(os.environ.get("ORTSERVE_RUN_DIR", ROOT / "run")).resolve()
    host = f"https://localhost:{os.environ.get('PROXY_HTTPS_PORT', '8443')}"
    ca = run_dir / "tls/ca.pem"
    try:
        urllib.request.urlopen(host + "/health", timeout=2, context=ssl.create_default_context(cafile=ca))
    except (OSError, ssl.SSLError):
        logger.info("the local stack is not up: starting it (make down stops it)")
        subprocess.run([sys.executable, str(ROOT / "tools/stack.py"), "up"], check=True)
    return host, str(ca), (run_dir / "api-key").read_text().strip()


def read_stats(stats_csv: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(stats_csv.open()))


def summarise(rows: list[dict[str, str]]) -> str:
    lines = [f"{'type':<6} {'name':<46} {'requests':>8} {'failed':>6} {'median':>8} {'p95':>8} {'per s':>6}"]
    for row in rows:
        lines.append(
            f"{row['Type']:<6} {row['Name'][:46]:<46} {row['Request Count']:>8} {row['Failure Count']:>6} "
            f"{float(row['Median Response Time']):>8.0f} {row['95%']:>8} {float(row['Requests/s']):>6.1f}"
        )
    return "\n".join(lines) + "\n(SSE rows: TTFT and inter-token latency in ms; 'decode tok/s per stream' in tok/s)"


def locust_command(args: argparse.Namespace, out: Path | None) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args.classes]
    if args.ui:
        return command + ["--web-host", "127.0.0.1", "--web-port", str(args.web_port), "--class-picker"]
    assert out is not None  # a headless run always has its results folder
    return command + [
        "--headless",
        *("--users", str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", args.run_time),
        *("--stop-timeout", "30", "--csv", str(out / "locust"), "--html", str(out / "report.html")),
        "--only-summary",
    ]


def run_until_done(command: list[str], env: dict[str, str]) -> int:
    """Locust in a subprocess that never outlives this one: SIGTERM or Ctrl-C here stops it too."""
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Locust got the same SIGINT; let it write its report
        return proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("classes", nargs="*", help=f"user classes (default MixedUser): {', '.join(USER_CLASSES)}")
    parser.add_argument("--ui", action="store_true", help="the web UI against the local stack instead of a run")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--spawn-rate", type=float, default=2)
    parser.add_argument("--run-time", default="60s", help="how long a headless run lasts (Locust syntax: 60s, 2m)")
    parser.add_argument("--host", help="proxy URL; without it a stack of its own is started on free ports")
    parser.add_argument("--ca", help="CA file for --host")
    parser.add_argument("--api-key", help="API key for --host")
    parser.add_argument("--results", type=Path, help="folder for the CSV and HTML (default results/loadtest/<time>)")
    args = parser.parse_args()
    args.classes = args.classes or ([] if args.ui else ["MixedUser"])
    out = args.results or ROOT / "results/loadtest" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    own_stack = None if args.ui or args.host else LocalStack(out / "run")
    with own_stack or nullcontext():
        if args.ui:
            host, ca, api_key = local_stack_credentials()
        elif own_stack:
            host, ca, api_key = own_stack.proxy_url, own_stack.ca, own_stack.api_key
        else:
            host, ca, api_key = args.host, args.ca or "", args.api_key or ""
        env = {**os.environ, "ORTSERVE_HOST": host, "ORTSERVE_CA": ca, "ORTSERVE_API_KEY": api_key}
        command = locust_command(args, out) + ["--host", host]
        if args.ui:
            logger.info("Locust web UI on http://127.0.0.1:%d against %s (Ctrl-C stops it)", args.web_port, host)
        else:
            logger.info("Locust: %s for %s against %s", " ".join(args.classes), args.run_time, host)
        returncode = run_until_done(command, env)
    if args.ui or not (out / "locust_stats.csv").exists():
        return returncode
    rows = read_stats(out / "locust_stats.csv")
    sys.stdout.write(summarise(rows) + f"\n\nCSV and HTML report in {out}\n")
    failed = sum(int(row["Failure Count"]) for row in rows)  # Locust's exit status misses the stop timeout's failures
    return returncode or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
