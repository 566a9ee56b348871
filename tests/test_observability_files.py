"""The compose telemetry configuration: collector pipeline, Prometheus scrape jobs, and a dashboard whose queries
name only metrics the services really export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from chat_service.serving.observability import ChatMetrics
from embeddings_service.observability import EmbeddingMetrics
from ortserve_common.limits.metrics import KeyMetrics
from ortserve_common.telemetry import ServiceMetrics
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _exported_names() -> set[str]:
    names: set[str] = set()
    registries = [m.registry for m in (ChatMetrics(), EmbeddingMetrics(), ServiceMetrics())]
    registries.append(KeyMetrics(CollectorRegistry()).registry)  # chat's and embeddings' per-key series
    for registry in registries:
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
            names.update(family.name + suffix for suffix in suffixes)
    return names


def test_collector_sends_otlp_traces_to_jaeger() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["otlp/jaeger"]
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"


def test_prometheus_scrapes_every_replica_of_every_service() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert {name: (sd["names"], sd["port"]) for name, sd in jobs.items()} == {
        "chat": (["chat"], 8000),
        "embeddings": (["embeddings"], 8001),
        "models": (["models"], 8002),
    }


def test_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/ortserve.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {word for expr in exprs for word in re.findall(r"\b(ortserve_[a-z_]+)\b", expr)}
    assert used and used <= _exported_names(), used - _exported_names()
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("requests per second", "time to first token", "inter-token", "queue depth", "errors", "batch size"):
        assert topic in titles
    # The engines' own series, per model: the batch the scheduler runs, which the admission gauges are not.
    for topic in ("rows decoding and waiting", "decode steps per second", "kv slots and positions", "prefix cache"):
        assert topic in titles
    engine_series = {name for name in _exported_names() if name.startswith("ortserve_engine_")}
    assert engine_series and engine_series <= used, engine_series - used
    assert all("by (model" in expr for expr in exprs if "ortserve_engine_" in expr)
    # Per-key limits: tokens and refusals by key id (bounded: KeyMetrics), and the store's errors.
    assert "by api key" in titles and "refusals" in titles
    key_series = {name for name in _exported_names() if name.startswith("ortserve_key_")}
    assert key_series and key_series <= used, key_series - used
    # Who waits where and who holds the places, interactive against batch (ortserve_common.priority).
    assert "by priority" in titles
    priority_series = {"ortserve_engine_queue_depth", "ortserve_admission_queue_depth", "ortserve_admission_running"}
    assert priority_series <= used and all("priority)" in e for e in exprs if any(s in e for s in priority_series))
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {datasource["datasources"][0]["uid"]}
