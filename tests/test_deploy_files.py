"""docker compose and the Dockerfiles, checked without a Docker engine (tests/test_compose.py runs them for real)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCKERFILES = [*sorted(ROOT.glob("services/*/Dockerfile")), ROOT / "proxy/Dockerfile"]
DOCKERFILES += [ROOT / "deploy/prometheus/Dockerfile", ROOT / "deploy/redis/Dockerfile"]


def _compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_compose_file_is_valid_with_the_example_env() -> None:
    result = _compose("config", "--quiet", env_file=ROOT / ".env.example")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_a_missing_required_key(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    lines = (ROOT / ".env.example").read_text().splitlines()
    env.write_text("\n".join(line for line in lines if not line.startswith("ORTSERVE_ADMIN_KEY=")))
    result = _compose("config", "--quiet", env_file=env)
    assert result.returncode != 0 and "ORTSERVE_ADMIN_KEY" in result.stderr


def test_compose_services_scale_and_wait_for_health() -> None:
    import yaml

    config = yaml.safe_load(_compose("config", env_file=ROOT / ".env.example").stdout)
    services = config["services"]
    # The default profile serves, with Prometheus, from images that build offline; the rest is opt-in.
    assert set(services) == {"proxy", "chat", "embeddings", "models", "prometheus", "limits-store"}
    everything = yaml.safe_load(_compose("--profile", "telemetry", "config", env_file=ROOT / ".env.example").stdout)
    assert set(everything["services"]) - set(services) == {"otel-collector", "jaeger", "grafana"}
    for name in ("chat", "embeddings"):
        assert "container_name" not in services[name] and "ports" not in services[name]  # --scale needs both absent
        assert services[name]["depends_on"]["models"]["condition"] == "service_healthy"
    assert services["chat"]["deploy"]["replicas"] == 2
    assert all("healthcheck" in services[name] for name in ("chat", "embeddings", "models"))
    assert services["proxy"]["environment"].get("PROXY_MAX_BODY")
    for name, service in services.items():
        # Built here and never pulled: no registry is needed, and the base is a build argument.
        assert service["pull_policy"] == "build" and "BASE_IMAGE" in service["build"]["args"], name


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_passes_hadolint_runs_as_non_root_with_a_healthcheck(dockerfile: Path) -> None:
    hadolint = BIN / "hadolint" if (BIN / "hadolint").exists() else shutil.which("hadolint")
    result = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert text.count("FROM ${BASE_IMAGE}") >= 1 and "ARG BASE_IMAGE=" in text  # an air-gapped host brings its base
    assert "# syntax=" not in text  # BuildKit would fetch that frontend image from a registry
    assert "HEALTHCHECK" in text
    assert "USER" in text or "nginx-unprivileged" in text


def test_no_service_image_installs_torch() -> None:
    lines = (ROOT / "requirements/runtime.txt").read_text().lower().splitlines()
    requirements = [line for line in lines if line.strip() and not line.startswith("#")]
    assert requirements and not any(line.startswith(("torch", "sentence-transformers")) for line in requirements)
    for pyproject in ROOT.glob("services/*/pyproject.toml"):
        assert "torch" not in pyproject.read_text().lower(), pyproject


def test_the_chat_memory_request_is_the_sized_one_in_scaling_md() -> None:
    """The base's chat memory is what docs/SCALING.md works out from the measured RSS: its parts add up to the worst
    case, the request leaves headroom above it, and the manifest asks exactly the documented figure."""
    text = (ROOT / "docs/SCALING.md").read_text(encoding="utf-8")
    section = text.split("### Memory per replica (`deploy/k8s/base/chat.yaml`)", 1)[1].split("\n\n", 3)[2]
    rows = {row.split("|")[1].strip(): row.split("|")[3].strip().strip("*") for row in section.splitlines()[2:]}
    parts = [float(rows[name]) for name in ("weights, tokenizers and runtime", "KV cache", "prefill scratch")]
    worst, request = float(rows["worst case"]), float(rows["memory request (= limit)"])
    assert abs(sum(parts) - worst) < 0.05 and request >= 1.1 * worst, rows
    manifest = (ROOT / "deploy/k8s/base/chat.yaml").read_text()
    chat = next(d for d in yaml.safe_load_all(manifest) if d["kind"] == "Deployment")
    resources = chat["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == f"{request:g}Gi"
