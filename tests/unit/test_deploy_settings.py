"""Every JOBSYNC_* variable that deploy/ sets or documents is one the code reads.

A misspelt variable is silently ignored (the settings allow extra keys), so a deployment would run with a
default nobody chose. The names are collected from the env examples (set and commented-out lines alike),
the compose files and the Kubernetes ConfigMap, Secrets and Deployments, and looked up in the settings class
that owns their prefix.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SETTINGS_MODULES = {
    "JOBSYNC_KAFKA_": "services.common.settings",
    "JOBSYNC_MONGODB_": "services.common.settings",
    "JOBSYNC_LOG_": "services.common.settings",
    "JOBSYNC_INGRESS_": "services.ingress.settings",
    "JOBSYNC_POLLER_": "services.poller.settings",
    "JOBSYNC_PROJECTOR_": "services.projector.settings",
    "JOBSYNC_SIMULATOR_": "services.simulator.settings",
}
VARIABLE = re.compile(r"^#?\s*(JOBSYNC_[A-Z0-9_]+)=", re.MULTILINE)


def known_variables() -> set[str]:
    names = set()
    for prefix, module_name in SETTINGS_MODULES.items():
        module = importlib.import_module(module_name)
        classes = [
            obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings
            and obj.model_config.get("env_prefix") == prefix
        ]
        assert classes, f"{module_name} has no settings class with the prefix {prefix}"
        for cls in classes:
            names |= {f"{prefix}{field.upper()}" for field in cls.model_fields}
    return names


def used_variables() -> dict[str, set[str]]:
    """variable -> the deploy/ files that name it"""
    used: dict[str, set[str]] = {}

    def add(name: str, where: Path) -> None:
        if name.startswith("JOBSYNC_") and name != "JOBSYNC_IMAGE":  # JOBSYNC_IMAGE is compose's own variable
            used.setdefault(name, set()).add(str(where.relative_to(ROOT)))

    for example in (DEPLOY / "env").glob("*.env.example"):
        for name in VARIABLE.findall(example.read_text()):
            add(name, example)
    for compose_file in (DEPLOY / "compose.yaml", DEPLOY / "compose.demo.yaml"):
        compose = yaml.safe_load(compose_file.read_text())
        for service in compose["services"].values():
            for name in service.get("environment", {}):
                add(name, compose_file)
    for manifest in (DEPLOY / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            if not doc:
                continue
            for key in {**doc.get("data", {}), **doc.get("stringData", {})}:
                add(key, manifest)
            if doc.get("kind") == "Deployment":
                for item in doc["spec"]["template"]["spec"]["containers"][0].get("env", []):
                    add(item["name"], manifest)
    return used


def test_deploy_files_name_many_variables() -> None:
    # guards the collector: if it found nothing, the check below would pass vacuously
    used = used_variables()
    assert {"JOBSYNC_INGRESS_PATH_SECRETS", "JOBSYNC_POLLER_API_KEY", "JOBSYNC_KAFKA_BOOTSTRAP_SERVERS"} <= set(used)
    assert len(used) > 20


def test_every_variable_in_deploy_is_read_by_the_code() -> None:
    known = known_variables()
    unknown = {name: sorted(files) for name, files in used_variables().items() if name not in known}
    assert not unknown, "variables no settings class reads (misspelt, or renamed in the code):\n" + "\n".join(
        f"  {name}  in {', '.join(files)}" for name, files in sorted(unknown.items())
    )


def test_the_required_secrets_are_left_for_the_operator() -> None:
    ingress = (DEPLOY / "env" / "ingress.env.example").read_text()
    poller = (DEPLOY / "env" / "poller.env.example").read_text()
    assert re.search(r"^JOBSYNC_INGRESS_PATH_SECRETS=$", ingress, re.MULTILINE)
    assert re.search(r"^JOBSYNC_POLLER_API_KEY=$", poller, re.MULTILINE)
