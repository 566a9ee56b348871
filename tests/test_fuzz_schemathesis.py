"""Schemathesis against every service's own OpenAPI schema, and through the proxy with a key.

Expected: no 5xx, every 4xx in OpenAI's error shape with nothing internal in it (tests/schemathesis_hooks.py), no
response that breaks its schema, invalid data refused. `make test` runs a short, seeded form (FUZZ_MAX_EXAMPLES=5
per operation, FUZZ_MAX_TIME=12 s per target); `make fuzz` a long one (stateful phase too, a random seed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_testing import RESULTS_DIR, Figures
from stack_testing import ROOT, Stack

MAX_EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "5")
MAX_TIME = os.environ.get("FUZZ_MAX_TIME", "12")
PHASES = os.environ.get("FUZZ_PHASES", "examples,coverage,fuzzing")
SEED = os.environ.get("FUZZ_SEED", "1")  # empty: a random seed (printed in the report)
# Checks that do not apply: positive_data_acceptance expects every schema-valid body to succeed, but a valid body may
# still name a model that is not served or overflow the context (a right 4xx); the others need credentials or
# resources that a fuzzer must not hold (admin keys, created objects).
EXCLUDED_CHECKS = "positive_data_acceptance,ignored_auth,object_level_authorization,use_after_free"
EXCLUDED_CHECKS += ",ensure_resource_availability"
TARGETS = {
    # name: (service whose schema is used, through the proxy?)
    "chat": ("CHAT_PORT", False),
    "embeddings": ("EMBED_PORT", False),
    "models": ("MODELS_PORT", False),
    "proxy-chat": ("CHAT_PORT", True),
    "proxy-embeddings": ("EMBED_PORT", True),
    "proxy-models": ("MODELS_PORT", True),
}
SHORT_FORM = os.environ.get("FUZZ_TARGETS", "chat,embeddings,models,proxy-chat").split(",")


def run_schemathesis(stack: Stack, target: str, report_dir: Path) -> tuple[int, str]:
    port_name, through_proxy = TARGETS[target]
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"http://127.0.0.1:{stack.ports[port_name]}/openapi.json",
        *("--max-examples", MAX_EXAMPLES, "--max-time", MAX_TIME, "--workers", "1", "--phases", PHASES),
        *("--checks", "all", "--exclude-checks", EXCLUDED_CHECKS, "--request-timeout", "60"),
        *("--report", "junit", "--report-dir", str(report_dir), "--output-truncate", "true"),
        "--no-color",
    ]
    command += ["--seed", SEED] if SEED else []
    if through_proxy:
        command += ["--url", stack.base_url, "--tls-verify", stack.ca, "-H", f"Authorization: Bearer {stack.api_key}"]
        # Through the proxy, /ready (a service's own probe) and /internal/* are not routed (404), and /v1/models is
        # always the registry's list, whatever service's schema is in use; proxy-models checks that one.
        excluded = "^/(ready|internal/)" if port_name == "MODELS_PORT" else "^/(ready$|v1/models)"
        command += ["--exclude-path-regex", excluded]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "SCHEMATHESIS_HOOKS": "schemathesis_hooks"}
    timeout = int(MAX_TIME) + 240  # the time budget covers generation; the last calls and shrinking come on top
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=report_dir)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("target", [t for t in TARGETS if t in SHORT_FORM])
def test_fuzz(reliability_stack: Stack, target: str, tmp_path: Path) -> None:
    report_dir = RESULTS_DIR / f"fuzz-{target}" if os.environ.get("FUZZ_KEEP_REPORTS") else tmp_path
    report_dir.mkdir(parents=True, exist_ok=True)
    returncode, output = run_schemathesis(reliability_stack, target, report_dir)
    generated = re.search(r"(\d+) generated", output)
    Figures(
        f"fuzz-{target}",
        {
            "test_cases": int(generated.group(1)) if generated else 0,
            "failures": output.count("Test Case ID:"),
            "server_errors": len(re.findall(r"ST101|Server error", output)),
            "exit_status": returncode,
            "max_examples": int(MAX_EXAMPLES),
            "max_time_s": int(MAX_TIME),
            "phases": PHASES,
        },
    ).write()
    assert returncode == 0, output[-12000:]
    assert generated and int(generated.group(1)) > 0, output[-3000:]
