"""deploy/k8s/ without a cluster: every manifest against the Kubernetes OpenAPI schemas, then cross-checks.

The schemas ship inside the kubernetes-validate wheel (strict mode: unknown fields are errors), so this
needs no network and no kubectl. The cross-checks tie the manifests together and to the code: probes on the
port the service listens on, selectors that select, Secrets and ConfigMaps that the Deployments name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still widely supported; the manifests use nothing newer
EXAMPLE_ONLY = {"secret.example.yaml"}
# Deployment args -> (settings module, port field)
COMMANDS = {
    ("ingress",): ("services.ingress.settings", "port"),
    ("poller", "run"): ("services.poller.settings", "ops_port"),
    ("projector", "run"): ("services.projector.settings", "ops_port"),
}


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def resources(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container per pod expected"
    return containers[0]


def selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("name", sorted(manifests()))
def test_manifest_matches_the_kubernetes_schema(name: str, version: str) -> None:
    for doc in manifests()[name]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")


def test_the_validator_rejects_a_broken_deployment() -> None:
    deployment = resources("Deployment")[0]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == set(manifests()) - EXAMPLE_ONLY
    images = {image["name"] for image in kustomization["images"]}
    for deployment in resources("Deployment"):
        assert container(deployment)["image"].split(":")[0] in images


def test_one_deployment_per_service_with_probes_on_its_own_port() -> None:
    deployments = resources("Deployment")
    assert {tuple(container(d)["args"]) for d in deployments} == set(COMMANDS)
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        main = container(deployment)
        module_name, field = COMMANDS[tuple(main["args"])]
        settings_cls = next(
            obj for obj in vars(importlib.import_module(module_name)).values()
            if isinstance(obj, type) and field in getattr(obj, "model_fields", {})
        )
        variable = f"{settings_cls.model_config['env_prefix']}{field.upper()}"
        env = {item["name"]: item["value"] for item in main.get("env", [])}
        port = int(env.get(variable, settings_cls.model_fields[field].default))
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert port in ports.values(), f"{name}: the container port is not the port the service listens on"
        probes = {kind: main[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert probes["livenessProbe"]["path"] == "/healthz" and probes["readinessProbe"]["path"] == "/readyz"
        for kind, probe in probes.items():
            assert ports.get(probe["port"], probe["port"]) == port, f"{name}: {kind} probes another port"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == port
        requests = main["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests), f"{name}: resource requests missing"
        assert "memory" in main["resources"]["limits"]
        pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selected(deployment["spec"]["selector"]["matchLabels"], template_labels)


def test_the_projector_has_a_disruption_budget_that_selects_it() -> None:
    projector = next(d for d in resources("Deployment") if container(d)["args"][0] == "projector")
    budgets = [
        pdb for pdb in resources("PodDisruptionBudget")
        if selected(pdb["spec"]["selector"]["matchLabels"], projector["spec"]["template"]["metadata"]["labels"])
    ]
    assert budgets, "no PodDisruptionBudget selects the projector's pods"
    assert budgets[0]["spec"]["minAvailable"] < projector["spec"]["replicas"], "the budget would block every drain"


def test_the_ingress_service_reaches_the_ingress_pods() -> None:
    ingress = next(d for d in resources("Deployment") if container(d)["args"] == ["ingress"])
    (service,) = resources("Service")
    assert selected(service["spec"]["selector"], ingress["spec"]["template"]["metadata"]["labels"])
    port_names = {p["name"] for p in container(ingress)["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])


def test_config_comes_from_the_configmap_and_secrets_that_exist() -> None:
    configmaps = {c["metadata"]["name"] for c in resources("ConfigMap")}
    secrets = {s["metadata"]["name"]: s for s in resources("Secret")}
    for deployment in resources("Deployment"):
        for source in container(deployment).get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, f"{source['secretRef']['name']} is not in the example"
    for secret in secrets.values():
        for key, value in secret["stringData"].items():
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}.{key} holds a value: secrets never go in git"


def test_every_object_lives_in_the_namespace() -> None:
    (namespace,) = resources("Namespace")
    for name, docs in manifests().items():
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], f"{name}: {doc['kind']}"
