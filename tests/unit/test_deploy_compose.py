"""deploy/compose.yaml without a Docker engine: the compose specification's JSON schema, then cross-checks.

The schema is the compose-spec project's own, as shipped inside the check-jsonschema wheel (with its licence),
so no network is needed. The cross-checks catch what a schema cannot: an env file without its example, a
healthcheck on the wrong port, a scrape target that does not exist, a secret written into the file.
"""

from __future__ import annotations

import importlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = [DEPLOY / "compose.yaml", DEPLOY / "compose.demo.yaml"]
JOBSYNC_IMAGE = "${JOBSYNC_IMAGE:-trio-jobsync:local}"
SECRET_KEY = re.compile(r"(API_KEY|SECRET|TOKEN|PASSWORD)", re.IGNORECASE)
# compose command -> (settings module, settings class, port field) of the service it runs
COMMANDS = {
    ("ingress",): ("services.ingress.settings", "port"),
    ("poller", "run"): ("services.poller.settings", "ops_port"),
    ("projector", "run"): ("services.projector.settings", "ops_port"),
    ("simulator",): ("services.simulator.settings", "port"),
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())  # safe_load resolves the '<<' merge keys compose uses


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(DEPLOY / "compose.yaml")


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema_file.read_text())


def jobsync_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == JOBSYNC_IMAGE}


def env_files(service: dict[str, Any]) -> list[str]:
    return [entry["path"] if isinstance(entry, dict) else entry for entry in service.get("env_file", [])]


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def effective_port(service: dict[str, Any]) -> int:
    """The port the service listens on: its settings default, unless an env file or the environment sets it."""
    command = tuple(service["command"])
    module_name, field = COMMANDS[command]
    module = importlib.import_module(module_name)
    settings_cls = next(
        obj for obj in vars(module).values()
        if isinstance(obj, type) and field in getattr(obj, "model_fields", {}) and obj.__module__ == module_name
    )
    port = settings_cls.model_fields[field].default
    variable = f"{settings_cls.model_config['env_prefix']}{field.upper()}"
    for name in env_files(service):
        port = int(read_env_file(DEPLOY / f"{name}.example").get(variable, port))
    return int(service.get("environment", {}).get(variable, port))


def test_the_validator_rejects_a_broken_file(compose: dict[str, Any], compose_schema: dict[str, Any]) -> None:
    # proves the schema check below can fail: a wrong type and an unknown key are both reported
    broken = json.loads(json.dumps(compose))
    broken["services"]["ingress"]["restart"] = 5
    broken["services"]["poller"]["helthcheck"] = {}
    validator = jsonschema.validators.validator_for(compose_schema)(compose_schema)
    messages = " | ".join(e.message for e in validator.iter_errors(broken))
    assert "is not of type 'string'" in messages and "helthcheck" in messages


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_specification(path: Path, compose_schema: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(compose_schema)(compose_schema)
    errors = sorted(validator.iter_errors(load(path)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_stack_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "mongodb", "ingress", "poller", "projector", "prometheus", "grafana", "simulator"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, one node"
    mongod = services["mongodb"]["command"]
    assert "--replSet" in mongod, "MongoDB must run as a replica set"
    assert "rs.initiate" in " ".join(services["mongodb"]["healthcheck"]["test"]), "nothing initiates the replica set"
    replica_set = mongod[mongod.index("--replSet") + 1]
    assert f"replicaSet={replica_set}" in compose["x-jobsync-environment"]["JOBSYNC_MONGODB_URI"]


def test_every_service_restarts_and_reports_health(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, f"{name}: no restart policy"
        assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared at the top level"
    assert {"kafka-data", "mongodb-data", "prometheus-data", "grafana-data"} <= declared


def test_jobsync_services_run_the_image_with_a_known_command_and_their_own_env(compose: dict[str, Any]) -> None:
    services = jobsync_services(compose)
    assert set(services) == {"ingress", "poller", "projector", "simulator"}
    for name, service in services.items():
        command = tuple(service["command"])
        assert command in COMMANDS, f"{name}: {command} is not a jobsync service command"
        assert (ROOT / "services" / command[0]).is_dir(), f"{name}: services/{command[0]} does not exist"
        for env_file in env_files(service):
            assert (DEPLOY / f"{env_file}.example").is_file(), f"{name}: {env_file} has no {env_file}.example"
    assert services["simulator"].get("profiles") == ["demo"], "the simulator must stay behind the demo profile"
    assert [n for n, s in compose["services"].items() if s.get("profiles")] == ["simulator"]


@pytest.mark.parametrize("name", ["ingress", "poller", "projector", "simulator"])
def test_healthchecks_and_ports_use_the_port_the_service_listens_on(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    module_name = COMMANDS[tuple(service["command"])][0]
    if not (ROOT / (module_name.replace(".", "/") + ".py")).exists():
        pytest.fail(f"{module_name} does not exist yet: the compose service '{name}' cannot be checked")
    port = effective_port(service)
    probe = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/" in probe, f"{name}: healthcheck does not probe port {port}"
    assert re.search(r"/(readyz|healthz)", probe)
    published = [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
    published += [str(p) for p in service.get("expose", [])]
    assert str(port) in published, f"{name}: port {port} is neither published nor exposed"


def test_prometheus_scrapes_each_service_where_it_listens(compose: dict[str, Any]) -> None:
    config = load(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name in ("ingress", "poller", "projector"):
        assert name in targets, f"Prometheus does not scrape {name}"
        host, port = targets[name].split(":")
        assert host == name
        if (ROOT / "services" / name / "settings.py").exists():
            assert int(port) == effective_port(compose["services"][name]), f"{name} is scraped on the wrong port"
    mounts = compose["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./prometheus/alerts.yml:/etc/prometheus/alerts.yml") for m in mounts)
    assert config["rule_files"] == ["alerts.yml"]


def test_grafana_gets_the_provisioned_datasource_and_dashboards(compose: dict[str, Any]) -> None:
    mounts = dict(m.split(":")[:2] for m in compose["services"]["grafana"]["volumes"])
    provider = load(DEPLOY / "grafana" / "provisioning" / "dashboards" / "trio-jobsync.yaml")["providers"][0]
    dashboards_in_container = provider["options"]["path"]
    host_dir = next(h for h, c in mounts.items() if c == dashboards_in_container)
    assert list((DEPLOY / host_dir).glob("*.json")), "no dashboard JSON where the provider looks"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / host_dir / Path(home).relative_to(dashboards_in_container)).is_file()
    datasource = load(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["uid"] == "prometheus"


def test_no_secret_is_written_into_the_compose_files() -> None:
    for path in COMPOSE_FILES:
        for name, service in load(path)["services"].items():
            environment = service.get("environment", {})
            for key, value in environment.items():
                if SECRET_KEY.search(key):
                    assert str(value).startswith("${"), f"{path.name} {name}: {key} must come from an env file"


def test_env_examples_carry_no_real_secret() -> None:
    for example in sorted((DEPLOY / "env").glob("*.env.example")):
        for key, value in read_env_file(example).items():
            if not SECRET_KEY.search(key) or not value:
                continue
            demo_only = "demo" in example.name or example.name.startswith("simulator")
            assert demo_only and value == "dev-key", f"{example.name}: {key} has a value; secrets stay empty"


def test_the_demo_override_points_the_poller_at_the_simulator(compose: dict[str, Any]) -> None:
    demo = load(DEPLOY / "compose.demo.yaml")
    assert set(demo["services"]) == {"poller"}
    assert env_files(demo["services"]["poller"]) == ["env/poller-demo.env"]
    assert "simulator" in demo["services"]["poller"]["depends_on"]
    settings = read_env_file(DEPLOY / "env" / "poller-demo.env.example")
    simulator = compose["services"]["simulator"]
    sim_env = read_env_file(DEPLOY / "env" / "simulator.env.example")
    if (ROOT / "services" / "simulator" / "settings.py").exists():
        port = effective_port(simulator)
        assert settings["JOBSYNC_POLLER_BASE_URL"].startswith(f"http://simulator:{port}/")
    assert settings["JOBSYNC_POLLER_API_KEY"] == sim_env["JOBSYNC_SIMULATOR_API_KEY"]
    assert settings["JOBSYNC_POLLER_TENANT"] == sim_env["JOBSYNC_SIMULATOR_TENANT"]
    ingress_port = effective_port(compose["services"]["ingress"])
    assert sim_env["JOBSYNC_SIMULATOR_WEBHOOK_URL"].startswith(f"http://ingress:{ingress_port}/")
