"""The Helm chart (deploy/helm/tocsin): `helm lint` and `helm template` with a real helm built
from the Go module proxy, and the rendered manifests checked for what matters at deploy time:
image, probes on the real health endpoints, resources, env, autoscaling and disruption budgets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tocsin.services.prometheus import provision

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "tocsin"
ALL_VALUES = CHART / "ci" / "all-values.yaml"


@pytest.fixture(scope="module")
def helm() -> str:
    return str(provision("helm") / "helm")


def _helm(helm: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm, *args], capture_output=True, text=True)


def _render(helm: str, *extra: str) -> list[dict]:
    p = _helm(helm, "template", "plant", str(CHART), *extra)
    assert p.returncode == 0, p.stderr
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_helm_lint_default_and_all_components(helm):
    for extra in ([], ["-f", str(ALL_VALUES)]):
        p = _helm(helm, "lint", "--strict", str(CHART), *extra)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "0 chart(s) failed" in p.stdout


def test_rendered_workloads_have_image_probes_resources_env(helm):
    docs = _render(helm, "-f", str(ALL_VALUES))
    workloads = {**_by_kind(docs, "Deployment"), **_by_kind(docs, "StatefulSet")}
    expected = {"plant-tocsin-worker", "plant-tocsin-fusion", "plant-tocsin-history-sink",
                "plant-tocsin-connector-opcua", "plant-tocsin-payments",
                "plant-tocsin-payments-ingest", "plant-tocsin-imaging",
                "plant-tocsin-imaging-receive"}
    assert set(workloads) == expected
    for name, w in workloads.items():
        pod = w["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["image"] == "registry.example.com/tocsin:0.1.0-test", name
        port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
        assert port == 9108
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, name
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, name
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], name
        env = {e["name"]: e for e in c["env"]}
        assert env["TOCSIN_BROKER"]["value"] == "kafka-0.kafka:9092"
        assert env["TOCSIN_METRICS_PORT"]["value"] == "9108"
        assert env["TOCSIN_METRICS_HOST"]["value"] == "0.0.0.0"
        assert env["TOCSIN_PARTITIONS"]["value"] == "8"
        assert env["TOCSIN_PLANT_CONFIG"]["value"] == "/etc/tocsin/plant.yaml"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert w["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9108"
    sink = workloads["plant-tocsin-history-sink"]["spec"]["template"]["spec"]["containers"][0]
    token = {e["name"]: e for e in sink["env"]}["TOCSIN_INFLUX_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["key"] == "influx-token"
    assert "value" not in token  # the token never sits in the pod spec in clear
    worker = workloads["plant-tocsin-worker"]
    assert worker["kind"] == "StatefulSet"
    assert "replicas" not in worker["spec"]  # KEDA owns the replica count
    assert worker["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    args = workloads["plant-tocsin-connector-opcua"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["connect", "opcua", "--config", "/etc/tocsin/connector-opcua.yaml"]


def test_config_is_a_configmap_and_the_token_a_secret(helm):
    docs = _render(helm, "-f", str(ALL_VALUES))
    (cm,) = _by_kind(docs, "ConfigMap").values()
    assert yaml.safe_load(cm["data"]["plant.yaml"])["assets"]["pump-1"]["type"] == "pump"
    conn = yaml.safe_load(cm["data"]["connector-opcua.yaml"])
    assert conn["endpoint"] == "opc.tcp://plc-1:4840/"
    secrets = _by_kind(docs, "Secret")
    assert set(secrets["plant-tocsin-secrets"]["data"]) == {"influx-token"}
    assert set(secrets["plant-tocsin-payments"]["data"]) == {"pan-key", "ingest-token-hashes"}
    assert "not-a-real-token" not in cm["data"].values()


def _secret_env(container: dict) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}


def test_payments_secrets_come_from_a_secret_and_are_required(helm):
    docs = _render(helm, "-f", str(ALL_VALUES))
    workloads = _by_kind(docs, "Deployment")
    worker = workloads["plant-tocsin-payments"]["spec"]["template"]["spec"]["containers"][0]
    ingest = workloads["plant-tocsin-payments-ingest"]["spec"]["template"]["spec"]["containers"][0]
    assert _secret_env(worker) == {"TOCSIN_PAN_TOKEN_KEY": ("plant-tocsin-payments", "pan-key")}
    assert _secret_env(ingest) == {
        "TOCSIN_PAN_TOKEN_KEY": ("plant-tocsin-payments", "pan-key"),
        "TOCSIN_INGEST_TOKEN_HASHES": ("plant-tocsin-payments", "ingest-token-hashes")}
    no_key = _helm(helm, "template", "plant", str(CHART), "--set", "payments.enabled=true")
    assert no_key.returncode != 0 and "payments.panKey" in no_key.stderr
    no_tokens = _helm(helm, "template", "plant", str(CHART), "--set", "payments.enabled=true",
                      "--set", "payments.panKey=0123456789abcdefgh",
                      "--set", "payments.ingest.enabled=true")
    assert no_tokens.returncode != 0 and "tokenHashes" in no_tokens.stderr
    mine = _render(helm, "--set", "payments.enabled=true", "--set", "payments.existingSecret=mine")
    assert "plant-tocsin-payments" not in _by_kind(mine, "Secret")
    pay = _by_kind(mine, "Deployment")["plant-tocsin-payments"]["spec"]["template"]["spec"]
    assert _secret_env(pay["containers"][0])["TOCSIN_PAN_TOKEN_KEY"] == ("mine", "pan-key")


def test_keda_scaledobject_on_consumer_lag_and_pdbs(helm):
    docs = _render(helm, "-f", str(ALL_VALUES))
    (so,) = _by_kind(docs, "ScaledObject").values()
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                            "name": "plant-tocsin-worker"}
    (trig,) = so["spec"]["triggers"]
    assert trig["type"] == "kafka"
    assert trig["metadata"]["consumerGroup"] == "tocsin"
    assert trig["metadata"]["topic"] == "plant.readings"
    assert so["spec"]["pollingInterval"] == 5 and so["spec"]["maxReplicaCount"] == 8
    pdbs = _by_kind(docs, "PodDisruptionBudget")
    assert {"plant-tocsin-worker", "plant-tocsin-fusion"} <= set(pdbs)
    assert all(p["spec"]["maxUnavailable"] == 1 for p in pdbs.values())


def test_hpa_alternative_and_partition_bound(helm):
    docs = _render(helm, "--set", "autoscaling.mode=hpa")
    assert not _by_kind(docs, "ScaledObject")
    (hpa,) = _by_kind(docs, "HorizontalPodAutoscaler").values()
    kinds = {m["type"] for m in hpa["spec"]["metrics"]}
    assert kinds == {"Pods", "Resource"}
    lag = next(m for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    assert lag["pods"]["metric"]["name"] == "tocsin_consumer_lag_messages"
    none = _render(helm, "--set", "autoscaling.mode=none", "--set", "worker.replicas=3")
    assert _by_kind(none, "StatefulSet")["plant-tocsin-worker"]["spec"]["replicas"] == 3
    p = _helm(helm, "template", "plant", str(CHART), "--set", "autoscaling.maxReplicas=9")
    assert p.returncode != 0 and "above kafka.partitions" in p.stderr
