"""deploy/ checked without a Docker engine or a cluster: Kubernetes objects against the
Kubernetes schemas (kubernetes-validate, strict), KEDA objects against models generated from
KEDA's CRDs (cloudcoil.models.keda), compose.yaml against the Compose spec's JSON schema
(vendored by check-jsonschema), every framefleet command in them parsed by the real CLI, and the
dashboard's and Prometheus' references to metric names and ports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from fleet import REPO

from framefleet.cli import main

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30"


def k8s_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc


def framefleet_commands() -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of every container that runs the framefleet image."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("framefleet"):
            yield f"compose:{name}", service["command"]
            for test in [service.get("healthcheck", {}).get("test", [])]:
                if test[1:2] == ["framefleet"]:
                    yield f"compose:{name}:healthcheck", test[2:]
    for where, doc in k8s_documents():
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            yield where, container["args"]
            probe = container.get("livenessProbe", {}).get("exec", {}).get("command", [])
            if probe[:1] == ["framefleet"]:
                yield f"{where}:liveness", probe[1:]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    health = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", dockerfile)
    assert health, "the image has no HEALTHCHECK"
    yield "Dockerfile:HEALTHCHECK", json.loads(health.group(1))[1:]


@pytest.mark.parametrize(
    ("where", "doc"), list(k8s_documents()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_kubernetes_objects_validate(where: str, doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        from cloudcoil.models.keda import v1alpha1

        model = getattr(v1alpha1, doc["kind"]).model_validate(doc)
        # pydantic ignores unknown fields: a misspelt one must still fail here
        assert drop_none(model.model_dump(by_alias=True, exclude_unset=True)) == doc
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def test_a_wrong_keda_field_is_caught() -> None:
    from cloudcoil.models.keda import v1alpha1

    doc = next(d for _, d in k8s_documents() if d["kind"] == "ScaledObject")
    bad = json.loads(json.dumps(doc))
    bad["spec"]["minReplicas"] = bad["spec"].pop("minReplicaCount")  # an HPA spelling
    model = v1alpha1.ScaledObject.model_validate(bad)
    assert drop_none(model.model_dump(by_alias=True, exclude_unset=True)) != bad


def test_compose_file_validates_against_the_compose_spec(tmp_path: Path) -> None:
    check = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    good = subprocess.run([*check, str(DEPLOY / "compose.yaml")], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        (DEPLOY / "compose.yaml").read_text().replace("stop_grace_period:", "stop_grace:")
    )
    bad = subprocess.run([*check, str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1, "the schema check accepts anything"


@pytest.mark.parametrize(
    ("where", "argv"), list(framefleet_commands()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_deploy_commands_parse_with_the_real_cli(where: str, argv: list[str]) -> None:
    ctx = main.make_context("framefleet", list(argv), resilient_parsing=False)
    name, command, rest = main.resolve_command(ctx, ctx._protected_args + ctx.args)
    assert command is not None, f"{where}: no framefleet command {argv[0]!r}"
    try:
        command.make_context(name or "", rest, parent=ctx)
    except click.UsageError as exc:
        raise AssertionError(f"{where}: {argv} does not parse: {exc}") from exc


def test_image_is_slim_non_root_and_headless() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{PYTHON\}$", dockerfile, re.M)
    assert "python:3.11-slim" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user
    assert user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["framefleet"]' in dockerfile
    pyproject = (REPO / "pyproject.toml").read_text()
    worker_extra = re.search(r"^worker = \[(.*)\]", pyproject, re.M)
    assert worker_extra
    assert "opencv-python-headless" in worker_extra.group(1)


def test_metrics_named_in_dashboard_and_prometheus_exist() -> None:
    exported = set(
        re.findall(r"\"(framefleet_[a-z_]+)\"", (REPO / "workers/metrics.py").read_text())
    )
    exported |= set(
        re.findall(r"\"(framefleet_[a-z_]+)\"", (REPO / "producer/exporter.py").read_text())
    )
    counters = {
        "framefleet_items_processed",
        "framefleet_items_failed",
        "framefleet_items_retried",
        "framefleet_messages",
    }
    assert counters <= exported
    names = (
        exported
        | {f"{c}_total" for c in counters}
        | {
            "framefleet_stage_seconds_bucket",
            "framefleet_stage_seconds_count",
            "framefleet_stage_seconds_sum",
        }
    )
    dashboard = json.loads((DEPLOY / "grafana/framefleet.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"framefleet_[a-z_]+", target["expr"])
    }
    assert used
    assert used <= names, used - names
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    worker_args = compose["services"]["worker"]["command"]
    port = int(worker_args[worker_args.index("--metrics-port") + 1])
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["framefleet-workers"]["dns_sd_configs"][0] == {
        "names": ["worker"],
        "type": "A",
        "port": port,
    }
    assert "ports" not in compose["services"]["worker"], "a published port breaks --scale worker=N"
    assert compose["services"]["redis"]["command"][1:3] == ["--appendonly", "yes"]
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])
