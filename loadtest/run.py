"""`make loadtest` / `make loadtest-ui`: Locust against ortserve, always as a subprocess (gevent must patch first).

    python -m loadtest.run                     # headless, 60 s, 8 MixedUsers, on a stack of its own (free ports)
    python -m loadtest.run --host URL --ca PEM --api-key KEY --run-time 10s StreamingChatUser
    python -m loadtest.run --ui                # web UI on 127.0.0.1:8089 against the local stack (./run, port 8443)

Headless runs are bounded (--run-time) and write Locust's CSV files and HTML report under
results/loadtest/<time>/; the exit status is Locust's (1 if any request failed). The web UI starts the same user
classes (MixedUser unless named; --class-picker gives Locust's picker instead, where every class starts ticked), writes
nothing under results/, and stops on Ctrl-C or SIGTERM: the run first (POST /stop), then Locust, then the local stack
if it started it.
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


STACK = [sys.executable, str(ROOT / "tools/stack.py")]


def local_stack_credentials() -> tuple[str, str, str, bool]:
    """The stack `make up` runs (ORTSERVE_RUN_DIR, PROXY_HTTPS_PORT), started now if it is not up; the last item says
    whether it was started here (and so is to be stopped here)."""
    run_dir = Path(os.environ.get("ORTSERVE_RUN_DIR", ROOT / "run")).resolve()
    host = f"https://localhost:{os.environ.get('PROXY_HTTPS_PORT', '8443')}"
    ca = run_dir / "tls/ca.pem"
    try:
        urllib.request.urlopen(host + "/health", timeout=2, context=ssl.create_default_context(cafile=ca))
        started = False
    except (OSError, ssl.SSLError):
        logger.info("the local stack is not up: starting it (stopped again when the UI stops)")
        subprocess.run([*STACK, "up"], check=True)
        started = True
    return host, str(ca), (run_dir / "api-key").read_text().strip(), started


def stop_ui_run(web_port: int) -> None:
    """Stops a running test the way the UI's Stop button does (Locust 2.47 answers GET /stop with 405)."""
    stop = urllib.request.Request(f"http://127.0.0.1:{web_port}/stop", method="POST")
    try:
        urllib.request.urlopen(stop, timeout=5)
    except OSError as error:  # Locust already gone, or never up: nothing to stop
        logger.info("POST /stop: %s", error)


def read_stats(stats_csv: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(stats_csv.open()))


def summarise(rows: list[dict[str, str]]) -> str:
    lines = [f"{'type':<6} {'name':<46} {'requests':>8} {'failed':>6} {'median':>8} {'p95':>8} {'per s':>6}"]
    for row in rows:
        lines.append(
            f"{row['Type']:<6} {row['Name'][:46]:<46} {row['Request Count']:>8} {row['Failure Count']:>6} "
            f"{float(row['Median Response Time']):>8.0f} {row['95%']:>8} {float(row['Requests/s']):>6.1f}"
        )
    return "\n".join(lines) + "\n(SSE rows: TTFT and inter-token latency in ms)"


def summarise_token_rates(rates_csv: Path) -> str:
    if not rates_csv.exists():
        return ""
    lines = [f"\n{'token rates, tok/s':<46} {'streams':>8} {'p10':>8} {'median':>8} {'p90':>8}"]
    for row in csv.DictReader(rates_csv.open()):
        lines.append(f"{row['name'][:46]:<46} {row['streams']:>8} {row['p10']:>8} {row['median']:>8} {row['p90']:>8}")
    return "\n".join(lines)


def locust_command(args: argparse.Namespace, out: Path | None) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args.classes]
    command += ["--users", str(args.users), "--spawn-rate", str(args.spawn_rate)]  # the UI's form starts with them
    if args.ui:
        # Without the picker the form runs exactly the classes named (MixedUser by default): Locust's picker ticks
        # every class, and users split by weight across six classes leave some with none.
        picker = ["--class-picker"] if args.class_picker else []
        return command + ["--web-host", "127.0.0.1", "--web-port", str(args.web_port), *picker]
    assert out is not None  # a headless run always has its results folder
    return command + [
        "--headless",
        *("--run-time", args.run_time, "--stop-timeout", "30"),
        *("--csv", str(out / "locust"), "--html", str(out / "report.html")),
        "--only-summary",
    ]


def run_until_done(command: list[str], env: dict[str, str], web_port: int | None = None) -> int:
    """Locust in a subprocess that never outlives this one: SIGTERM or Ctrl-C here stops it too (the web UI's run
    first, through POST /stop, so no request is cut off by Locust's exit)."""
    proc = subprocess.Popen(command, env=env, cwd=ROOT)

    def stop(*_: object) -> None:
        if web_port is not None:
            stop_ui_run(web_port)
        proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Locust got the same SIGINT; let it write its report
        if web_port is not None:
            stop(proc)
        return proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("classes", nargs="*", help=f"user classes (default MixedUser): {', '.join(USER_CLASSES)}")
    parser.add_argument("--ui", action="store_true", help="the web UI (against the local stack without --host)")
    parser.add_argument("--class-picker", action="store_true", help="with --ui: Locust's user class picker")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--spawn-rate", type=float, default=2)
    parser.add_argument("--run-time", default="60s", help="how long a headless run lasts (Locust syntax: 60s, 2m)")
    parser.add_argument("--host", help="proxy URL; without it a stack of its own is started on free ports")
    parser.add_argument("--ca", help="CA file for --host")
    parser.add_argument("--api-key", help="API key for --host")
    parser.add_argument("--results", type=Path, help="folder for the CSV and HTML (default results/loadtest/<time>)")
    args = parser.parse_args(argv)
    args.classes = args.classes or ["MixedUser"]
    if args.ui:
        return run_ui(args)
    out = args.results or ROOT / "results/loadtest" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    own_stack = None if args.host else LocalStack(out / "run")
    with own_stack or nullcontext():
        if own_stack:
            host, ca, api_key = own_stack.proxy_url, own_stack.ca, own_stack.api_key
        else:
            host, ca, api_key = args.host, args.ca or "", args.api_key or ""
        env = {**os.environ, "ORTSERVE_HOST": host, "ORTSERVE_CA": ca, "ORTSERVE_API_KEY": api_key}
        logger.info("Locust: %s for %s against %s", " ".join(args.classes), args.run_time, host)
        returncode = run_until_done(locust_command(args, out) + ["--host", host], env)
    if not (out / "locust_stats.csv").exists():
        return returncode
    rows = read_stats(out / "locust_stats.csv")
    rates = summarise_token_rates(out / "locust_token_rates.csv")
    sys.stdout.write(summarise(rows) + rates + f"\n\nCSV and HTML report in {out}\n")
    failed = sum(int(row["Failure Count"]) for row in rows)  # Locust's exit status misses the stop timeout's failures
    return returncode or (1 if failed else 0)


def run_ui(args: argparse.Namespace) -> int:
    """The web UI until Ctrl-C or SIGTERM; the local stack is stopped afterwards only if it was started here."""
    started = False
    # A SIGTERM while the stack starts must still reach the finally below (run_until_done installs its own after).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.host:
            host, ca, api_key = args.host, args.ca or "", args.api_key or ""
        else:
            host, ca, api_key, started = local_stack_credentials()
        env = {**os.environ, "ORTSERVE_HOST": host, "ORTSERVE_CA": ca, "ORTSERVE_API_KEY": api_key}
        logger.info("Locust web UI on http://127.0.0.1:%d against %s (Ctrl-C stops it)", args.web_port, host)
        return run_until_done(locust_command(args, None) + ["--host", host], env, args.web_port)
    finally:
        if started:
            logger.info("stopping the local stack this UI started")
            subprocess.run([*STACK, "down"], check=False)


if __name__ == "__main__":
    sys.exit(main())
