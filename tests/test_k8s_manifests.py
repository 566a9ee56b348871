"""deploy/k8s, checked offline (no cluster here): every overlay is rendered with `kubectl kustomize`, every object is
validated against the Kubernetes schemas (kubernetes-validate, strict), and the manifests are held to the code: images
the repo builds, probe paths and ports the services really serve, env vars that are real settings, drain timings that
fit the services' graceful shutdown, and the metric names the autoscalers read."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import threading
from functools import cache
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy/k8s"
OVERLAYS = ("dev", "prod", "ingress", "queue-autoscaling")
# The oldest Kubernetes the manifests are meant for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
SERVICES = {"chat": "CHAT_", "embeddings": "EMBED_", "models": "MODELS_"}
# Secrets an operator creates before applying (deploy/k8s/README.md); the dev overlay generates ortserve-keys.
EXTERNAL_SECRETS = {"ortserve-tls", "ortserve-keys"}


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the overlays cannot be rendered (kubectl kustomize)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in render(overlay) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{overlay}: expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def container(overlay: str, name: str) -> dict[str, Any]:
    return find(overlay, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def pod_specs(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    specs = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] == "Deployment"]
    return specs + [(d["metadata"]["name"], d["spec"]) for d in docs if d["kind"] == "Pod"]


def container_env(spec: dict[str, Any]) -> dict[str, str]:
    """The environment the process sees: fieldRefs and secrets get stand-in values, $(VAR) references expanded."""
    env: dict[str, str] = {}
    for item in spec.get("env", []):
        if "value" in item:
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), item["value"])
        elif "fieldRef" in item["valueFrom"]:
            value = {"status.podIP": "10.1.2.3", "metadata.namespace": "ortserve"}[
                item["valueFrom"]["fieldRef"]["fieldPath"]
            ]
        else:
            value = "sk-test-secret"
        env[item["name"]] = value
    return env


def loader_pod() -> dict[str, Any]:
    return yaml.safe_load((K8S / "models-loader.yaml").read_text())


# --- rendering and schemas -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schema(overlay: str, version: str) -> None:
    import kubernetes_validate

    docs = render(overlay) + (loader_pod(),)
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_one_the_repo_builds(overlay: str) -> None:
    built = yaml.safe_load((K8S / "images.yaml").read_text())
    version = re.search(r'^version = "(.+)"', (ROOT / "services/chat/pyproject.toml").read_text(), re.M).group(1)
    for name, spec in pod_specs(render(overlay) + (loader_pod(),)):
        for c in spec.get("initContainers", []) + spec["containers"]:
            image, _, tag = c["image"].partition(":")
            assert image in built, f"{name}: image {c['image']} is not in deploy/k8s/images.yaml"
            assert (ROOT / built[image]).is_file(), f"{built[image]} does not exist"
            assert tag == version, f"{name}: {c['image']} is not the release tag {version}"


def test_every_dockerfile_has_its_image() -> None:
    built = yaml.safe_load((K8S / "images.yaml").read_text())
    built_here = [*ROOT.glob("services/*/Dockerfile"), ROOT / "proxy/Dockerfile", ROOT / "deploy/redis/Dockerfile"]
    dockerfiles = {str(p.relative_to(ROOT)) for p in built_here}
    assert set(built.values()) == dockerfiles


# --- the manifests against the services' own code --------------------------------------------------------------------


def service_settings(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's settings object, built from exactly the environment the manifest gives it."""
    from chat_service.settings import ChatSettings
    from embeddings_service.settings import EmbedSettings
    from models_service.settings import ModelsSettings

    cls = {"chat": ChatSettings, "embeddings": EmbedSettings, "models": ModelsSettings}[name]
    prefix = SERVICES[name]
    known = {prefix + field.upper() for field in cls.model_fields}
    for field in cls.model_fields.values():
        choices = getattr(field.validation_alias, "choices", [])
        known |= {choice.upper() for choice in choices if isinstance(choice, str)}
    unknown = {key for key in env if key.startswith(prefix)} - known
    assert not unknown, f"{name}: {sorted(unknown)} are not {cls.__name__} settings"
    for key in [k for k in os.environ if k.startswith((prefix, "ORTSERVE_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cls()


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("name", list(SERVICES))
def test_probes_and_ports_match_what_the_service_serves(
    name: str, overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    from fastapi.testclient import TestClient

    spec = container(overlay, name)
    settings = service_settings(name, container_env(spec), monkeypatch)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports == {"http": settings.port}
    assert settings.host == "0.0.0.0"
    service = find(overlay, "Service", name)["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in service] == [(settings.port, "http")]
    probes = {kind: spec[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == probes["startupProbe"]["path"] == "/ready"
    assert all(probe["port"] == "http" for probe in probes.values())

    main = importlib.import_module(f"{name}_service.main")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(main.create_app(settings))  # no `with`: the lifespan (model loading) never runs
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503  # the route exists; not ready before the models load
        assert client.get("/metrics").status_code == 200
    if name != "models":
        advertised = settings.public_url()
        assert advertised == f"http://10.1.2.3:{settings.port}", "the registry must reach the pod by its own IP"


def test_the_proxy_renders_its_template_and_reaches_the_services() -> None:
    template = (ROOT / "proxy/templates/ortserve.conf.template").read_text()
    dockerfile = (ROOT / "proxy/Dockerfile").read_text()
    spec = container("prod", "proxy")
    env = container_env(spec)
    for variable in set(re.findall(r"\$\{(\w+)\}", template)):
        assert variable in env or re.search(rf"\b{variable}=", dockerfile), f"${{{variable}}} is set nowhere"
    assert "location = /health" in template
    assert {p["name"]: p["containerPort"] for p in spec["ports"]} == {"https": int(env["PROXY_HTTPS_PORT"])}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert spec[kind]["httpGet"] == {"path": "/health", "port": "https", "scheme": "HTTPS"}
    # nginx does not use resolv.conf's search list: fully qualified names, on the Services' ports.
    for variable, service in (
        ("CHAT_UPSTREAM", "chat"),
        ("EMBEDDINGS_UPSTREAM", "embeddings"),
        ("REGISTRY_UPSTREAM", "models"),
    ):
        port = find("prod", "Service", service)["spec"]["ports"][0]["port"]
        assert env[variable] == f"{service}.ortserve.svc.cluster.local:{port}"
    assert env["PROXY_RESOLVER"] == "auto" and "/etc/resolv.conf" in spec["args"][0]
    assert "exec /docker-entrypoint.sh nginx" in spec["args"][0]
    # Headless: nginx gets every ready pod's IP and spreads over them.
    assert find("prod", "Service", "chat")["spec"]["clusterIP"] == "None"
    assert find("prod", "Service", "embeddings")["spec"]["clusterIP"] == "None"
    mounts = {m["mountPath"] for m in spec["volumeMounts"]}
    assert {"/etc/nginx/conf.d", "/tmp", str(Path(env["PROXY_TLS_CERT"]).parent)} <= mounts


def test_the_served_models_are_in_the_manifest_configmap() -> None:
    from ortserve_common.model_manifest import load_manifest

    manifest = load_manifest(K8S / "base/models-manifest.yaml")
    for overlay in ("dev", "prod"):
        chat = container_env(container(overlay, "chat"))
        embeddings = container_env(container(overlay, "embeddings"))
        served = [chat["CHAT_MODEL_ID"], *(item.split("=")[0] for item in embeddings["EMBED_MODELS"].split(","))]
        assert all(manifest.entry(model) for model in served), (overlay, served)
        assert chat["CHAT_MODEL_PATH"].startswith("/models/")
    registry = container_env(container("prod", "models"))
    mount = next(m for m in container("prod", "models")["volumeMounts"] if m["name"] == "manifest")
    assert registry["MODELS_MANIFEST"] == f"{mount['mountPath']}/manifest.yaml"


# --- operations: security, state, drain, disruption, network ---------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_non_root_read_only_and_bounded(overlay: str) -> None:
    for name, spec in pod_specs(render(overlay) + (loader_pod(),)):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name  # else CHAT_PORT=tcp://... would clash with the settings
        for c in spec["containers"]:
            security = c["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), (name, bound)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_models_are_read_only_and_registry_state_survives_restarts(overlay: str) -> None:
    for name in ("chat", "embeddings"):
        spec = find(overlay, "Deployment", name)["spec"]["template"]["spec"]
        models = next(v for v in spec["volumes"] if v["name"] == "models")
        assert models["persistentVolumeClaim"] == {"claimName": "ortserve-models", "readOnly": True}
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "models")
        assert mount["readOnly"] is True
    registry = find(overlay, "Deployment", "models")
    assert registry["spec"]["replicas"] == 1 and registry["spec"]["strategy"]["type"] == "Recreate"
    volume = next(v for v in registry["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    claim = find(overlay, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    env = container_env(container(overlay, "models"))
    data = next(m for m in container(overlay, "models")["volumeMounts"] if m["name"] == "data")
    assert env["MODELS_DATA_DIR"] == data["mountPath"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_is_rendered_or_created_beforehand(overlay: str) -> None:
    docs = render(overlay)
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for name, spec in pod_specs(docs):
        refs = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        for item in spec["containers"][0].get("env", []):
            if "secretKeyRef" in item.get("valueFrom", {}):
                refs.add(item["valueFrom"]["secretKeyRef"]["name"])
        assert refs <= rendered | EXTERNAL_SECRETS, (name, refs)
    keys = [n for n in rendered if n.startswith("ortserve-keys")]
    assert len(keys) == (1 if overlay == "dev" else 0), "only dev ships (throwaway) keys"


def graceful_shutdown_s(service: str) -> float:
    """How long the service lets requests in flight finish after SIGTERM: uvicorn's timeout_graceful_shutdown, given
    in its __main__, or the default of the shared ortserve_common.server.serve (run_service calls it)."""
    source = (ROOT / f"services/{service}/{service}_service/__main__.py").read_text()
    given = re.search(r"(?:timeout_graceful_shutdown|graceful_timeout_s)=(\d+)", source)
    if given:
        return float(given.group(1))
    assert "serve(" in source or "run_service(" in source, f"{service}: no graceful shutdown found"
    from ortserve_common.server import serve

    return float(inspect.signature(serve).parameters["graceful_timeout_s"].default)


def test_drain_fits_the_graceful_shutdown_and_the_proxy_dns() -> None:
    template = (ROOT / "proxy/templates/ortserve.conf.template").read_text()
    nginx_valid = int(re.search(r"resolver \S+ valid=(\d+)s", template).group(1))
    headless_ttl = 5  # CoreDNS's default TTL for a headless Service's records
    for name in ("chat", "embeddings"):
        graceful = graceful_shutdown_s(name)
        spec = find("prod", "Deployment", name)["spec"]["template"]["spec"]
        command = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        args = dict(zip(command[2::2], command[3::2], strict=True))
        assert args["--port"] == str(spec["containers"][0]["ports"][0]["containerPort"])
        assert float(args["--settle"]) >= nginx_valid + headless_ttl, "nginx may still send new requests"
        assert float(args["--max-wait"]) + graceful + 10 <= spec["terminationGracePeriodSeconds"], name
    proxy = find("prod", "Deployment", "proxy")["spec"]["template"]["spec"]
    longest_service = find("prod", "Deployment", "chat")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert proxy["terminationGracePeriodSeconds"] >= longest_service, "the proxy must outlive the streams it relays"


def test_drain_waits_for_requests_in_flight_and_no_longer() -> None:
    spec = importlib.util.spec_from_file_location("drain", K8S / "base/drain.py")
    drain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drain)
    from ortserve_common import telemetry

    assert all(f'"{gauge}"' in Path(telemetry.__file__).read_text() for gauge in drain.GAUGES)
    state = {"running": 1, "scrapes": 0}

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["scrapes"] += 1
            if state["scrapes"] >= 3:
                state["running"] = 0  # the last stream ends
            body = f"# TYPE x gauge\nortserve_requests_running {state['running']}.0\nortserve_requests_waiting 0.0\n"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        assert drain.in_flight(int(port)) == 1.0
        assert drain.main(["--port", port, "--settle", "0", "--max-wait", "10", "--interval", "0.05"]) == 0
        assert state["scrapes"] == 3, "it stops looking once nothing is in flight"
        state.update(running=1, scrapes=-1000)  # never ends: the wait is bounded by --max-wait
        args = ["--port", port, "--settle", "0", "--max-wait", "0.3", "--interval", "0.05"]
        assert drain.main(args) == 0 and state["running"] == 1
    finally:
        server.shutdown()
    assert drain.in_flight(int(port)) == 0.0, "nothing listening: nothing to wait for"


def test_dev_is_one_replica_each_without_autoscaling() -> None:
    docs = render("dev")
    assert {d["metadata"]["name"]: d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment"} == {
        "models": 1, "chat": 1, "embeddings": 1, "proxy": 1, "limits-store": 1
    }  # fmt: skip
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert find("dev", "Service", "proxy")["spec"]["type"] == "NodePort"


@pytest.mark.parametrize("overlay", ["prod", "ingress", "queue-autoscaling"])
def test_prod_autoscales_spreads_and_budgets_disruption(overlay: str) -> None:
    docs = render(overlay)
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d["spec"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"chat", "embeddings"}
    for name, hpa in hpas.items():
        assert hpa["minReplicas"] >= 2, "one replica lost must not take the service down"
        assert "replicas" not in find(overlay, "Deployment", name)["spec"], "the HPA owns the replica count"
    if overlay != "queue-autoscaling":
        for hpa in hpas.values():
            assert hpa["metrics"] == [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ]
    for name in ("chat", "embeddings", "proxy"):
        affinity = find(overlay, "Deployment", name)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        term = affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }
    assert budgets == {"chat", "embeddings", "models", "proxy", "limits-store"}
    assert find(overlay, "Deployment", "proxy")["spec"]["replicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_only_the_proxy_reach_the_services(overlay: str) -> None:
    docs = render(overlay)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies), "no default deny"
    allowed: dict[str, set[str]] = {}
    for policy in policies:
        target = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from", [{"anywhere": True}])
            for peer in peers:
                source = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                if source is None and "namespaceSelector" in peer:
                    source = "namespace:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                allowed.setdefault(target, set()).add(source or "anywhere")
    assert allowed["chat"] == allowed["embeddings"] == {"proxy", "models", "namespace:monitoring"}
    assert allowed["models"] == {"proxy", "chat", "embeddings", "namespace:monitoring"}
    assert allowed["limits-store"] == {"chat", "embeddings", "models"}, "Redis has no password"
    assert allowed["proxy"] == ({"namespace:ingress-nginx"} if overlay == "ingress" else {"anywhere"})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_counts_in_the_one_limits_store(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import urlsplit

    store = find(overlay, "Deployment", "limits-store")
    assert store["spec"]["replicas"] == 1 and store["spec"]["strategy"]["type"] == "Recreate", "one set of counters"
    spec = store["spec"]["template"]["spec"]
    redis = spec["containers"][0]
    built = yaml.safe_load((K8S / "images.yaml").read_text())
    dockerfile = (ROOT / built[redis["image"].partition(":")[0]]).read_text()
    assert built[redis["image"].partition(":")[0]] == "deploy/redis/Dockerfile"
    assert re.search(rf"^USER {spec['securityContext']['runAsUser']}$", dockerfile, re.M), "not the image's user"
    # The manifest's args follow the image's ENTRYPOINT; a CMD would be replaced by them.
    assert "ENTRYPOINT" in dockerfile and not re.search(r"^CMD ", dockerfile, re.M)
    args = dict(zip(redis["args"][::2], redis["args"][1::2], strict=True))
    assert args["--maxmemory-policy"] == "noeviction", "evicting would silently reset some keys' counters"
    ceiling_mib = int(args["--maxmemory"].removesuffix("mb")) * 1000**2 / 1024**2
    assert ceiling_mib < int(redis["resources"]["limits"]["memory"].removesuffix("Mi")), "full before OOM-killed"
    service = find(overlay, "Service", "limits-store")["spec"]
    assert "clusterIP" not in service, "a ClusterIP: one pod, one address"
    (port,) = service["ports"]
    assert port["targetPort"] == "redis" and {"name": "redis", "containerPort": port["port"]} in redis["ports"]
    assert redis["livenessProbe"]["tcpSocket"]["port"] == "redis"
    assert redis["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    for name in SERVICES:
        settings = service_settings(name, container_env(container(overlay, name)), monkeypatch)
        url = urlsplit(settings.limits_store_url)
        assert (url.scheme, url.hostname, url.port) == ("redis", "limits-store", port["port"]), name
        if name != "models":  # the registry only reads usage; it refuses no request
            assert settings.limits_fail_open is True, name


def test_ingress_reaches_the_proxy_over_https() -> None:
    ingress = find("ingress", "Ingress", "ortserve")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    proxy = find("ingress", "Service", "proxy")["spec"]
    assert backend["name"] == "proxy" and backend["port"]["name"] in {p["name"] for p in proxy["ports"]}
    assert proxy["type"] == "ClusterIP"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # streams pass token by token
    assert ingress["spec"]["tls"][0]["secretName"] in EXTERNAL_SECRETS
    assert find("prod", "Service", "proxy")["spec"]["type"] == "LoadBalancer"


def test_queue_autoscaling_reads_metrics_the_services_export() -> None:
    from ortserve_common import telemetry

    exported = set(re.findall(r'Gauge\(\s*"(\w+)"', Path(telemetry.__file__).read_text()))
    values = yaml.safe_load((K8S / "overlays/queue-autoscaling/prometheus-adapter-values.yaml").read_text())
    served = {}
    for rule in values["rules"]["custom"]:
        used = set(re.findall(r"(ortserve_\w+)\{", rule["metricsQuery"] + rule["seriesQuery"]))
        assert used and used <= exported, f"{used - exported} are not metrics the services export"
        served[rule["name"]["as"]] = rule
    docs = render("queue-autoscaling")
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        names = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
        assert names and names <= set(served), (hpa["metadata"]["name"], names)


@pytest.mark.parametrize(
    ("setting", "nameserver", "expected"),
    [
        ("auto", "10.96.0.10", "10.96.0.10"),
        ("auto", "fd00:10:96::a", "[fd00:10:96::a]"),
        ("10.0.0.2", "10.96.0.10", "10.0.0.2"),
    ],
)
def test_the_proxy_start_reads_the_cluster_dns(tmp_path: Path, setting: str, nameserver: str, expected: str) -> None:
    """The proxy's shell prelude, run for real with the image's entrypoint replaced by an echo."""
    script = container("prod", "proxy")["args"][0]
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        f"search ortserve.svc.cluster.local svc.cluster.local\nnameserver {nameserver}\noptions ndots:5\n"
    )
    script = script.replace("/etc/resolv.conf", str(resolv))
    script = script.replace("exec /docker-entrypoint.sh nginx -g 'daemon off;'", 'echo "$PROXY_RESOLVER"')
    result = subprocess.run(
        ["sh", "-c", script],
        env={"PROXY_RESOLVER": setting, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
