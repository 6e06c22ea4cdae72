"""The Helm chart (``deploy/helm/event-gateway``; issue 14): ``helm lint``, ``helm
template`` (helm built by ``scripts/install --tests``), every rendered manifest valid
against Kubernetes' own schemas (``kubernetes-validate``, strict: no unknown field), and
the rendered configuration one the gateway accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "event-gateway"
KUBERNETES = "1.31.0"


def helm(*args: str) -> str:
    found = Path(sys.executable).parent / "helm"
    binary = str(found) if found.exists() else shutil.which("helm")
    if binary is None:
        pytest.fail("no helm: `bash scripts/install --tests` builds it into .venv/bin")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(*sets: str) -> list[dict[str, Any]]:
    flags = [f for s in sets for f in ("--set", s)]
    out = helm("template", "gw", str(CHART), "--namespace", "events", *flags)
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_the_chart_lints_and_renders_valid_kubernetes_manifests() -> None:
    helm("lint", "--strict", str(CHART))
    docs = render("serviceMonitor.enabled=true", "admin.enabled=true")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "PodDisruptionBudget", "Service", "Service",
                     "ServiceMonitor", "StatefulSet"]
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":  # a CRD: not in Kubernetes' schemas
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert doc["spec"]["endpoints"][0]["path"] == "/metrics"
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    assert sorted(d["kind"] for d in render()) == ["ConfigMap", "PodDisruptionBudget",
                                                   "Service", "Service", "StatefulSet"]


def test_each_replica_has_its_own_volume_probes_and_a_numeric_non_root_user() -> None:
    [sts] = by_kind(render(), "StatefulSet")
    spec = sts["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert isinstance(spec["securityContext"]["runAsUser"], int)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"]
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert claim["metadata"]["name"] == "data"
    assert {"name": "GATEWAY_DATA_DIR", "value": "/data"} in container["env"]
    assert container["image"].endswith(":0.1.0")  # a pinned tag, never latest


def test_secrets_come_from_secrets_and_the_config_is_one_the_gateway_accepts(
        tmp_path: Path) -> None:
    docs = render("redis.urlSecret.name=redis-auth", "admin.enabled=true")
    [sts] = by_kind(docs, "StatefulSet")
    [container] = sts["spec"]["template"]["spec"]["containers"]
    [redis] = [e for e in container["env"] if e["name"] == "REDIS_URL"]
    assert redis["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "url"}
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["secret-gateway-github"]["secret"]["secretName"] == "gateway-github"

    [configmap] = by_kind(docs, "ConfigMap")
    text = configmap["data"]["gateway.yaml"]
    assert "${file:/etc/gateway/secrets/gateway-github/webhook_secret}" in text
    # the files the Secrets would mount, here: the gateway loads what the chart renders
    secrets = tmp_path / "secrets"
    for name, key, value in (("gateway-github", "webhook_secret", "a-real-github-secret-1"),
                             ("gateway-admin", "token", "a-real-admin-token-123")):
        (secrets / name).mkdir(parents=True)
        (secrets / name / key).write_text(value)
    path = tmp_path / "gateway.yaml"
    path.write_text(text.replace("/etc/gateway/secrets", str(secrets)))
    loaded = load_config(path, env={"REDIS_URL": "redis://redis:6379/0"})
    assert loaded.settings.data_dir == "/data"
    assert loaded.settings.redis.url is not None
    assert loaded.settings.admin.token is not None
    assert sorted(loaded.connectors) == ["github-main"]
