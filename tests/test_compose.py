"""docker-compose.yml and the Dockerfile: a valid Compose file that runs the pilot of
examples/pilot/ from the very files the local demo reads, with keys made once into a
volume the nodes' user owns, health checks, start-up order and namespace host names; one
image made of the project's wheel, without a tool-chain or a source tree. (.ci/run builds
and runs it on a private docker engine: .ci/compose-federation.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.config import load_node_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PILOT = ROOT / "examples" / "pilot"
NODES = ("firm", "corporation", "municipality", "rvo")
ONE_SHOT = "keys"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def workdir() -> PurePosixPath:
    """The final stage's WORKDIR: where relative paths in commands resolve."""
    final = DOCKERFILE.read_text().rpartition("\nFROM ")[2]
    return PurePosixPath(re.findall(r"(?m)^WORKDIR\s+(\S+)", final)[-1])


def binds(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The service's bind mounts as (host path, container path, mode)."""
    out = []
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith((".", "/")):
            out.append((source, target, mode[0] if mode else "rw"))
    return out


def host_path(service: dict[str, Any], path: str) -> Path:
    """The repository file a path in the container is, through the service's binds."""
    inside = workdir() / path
    for source, target, _ in binds(service):
        if inside.is_relative_to(target):
            return (ROOT / source / inside.relative_to(target)).resolve()
    raise AssertionError(f"{path} is not mounted from the repository")


def config_of(name: str) -> Path:
    """The configuration file a server service runs with (the command's first argument)."""
    service = services()[name]
    return host_path(service, service["command"][1])


def port_of(name: str) -> int:
    if name == "registry":
        port: int = tomllib.loads(config_of(name).read_text())["registry"]["port"]
        return port
    return load_node_settings(config_of(name), {}).port


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    compose_spec = pytest.importorskip("compose_spec")
    parsed = compose_spec.PyCompose.from_yaml(COMPOSE.read_text())
    parsed.validate()  # raises ValueError naming the first fault
    assert sorted(parsed.service_names()) == sorted(services())


def test_the_specification_check_refuses_a_key_compose_does_not_know() -> None:
    compose_spec = pytest.importorskip("compose_spec")
    broken = COMPOSE.read_text().replace("services:\n", "services:\n  odd:\n    colour: red\n", 1)
    with pytest.raises(ValueError, match="colour"):
        compose_spec.PyCompose.from_yaml(broken).validate()


def test_services_are_the_registry_the_three_nodes_and_the_keys() -> None:
    assert set(services()) == {"registry", ONE_SHOT, *NODES}


@pytest.mark.parametrize("name", NODES)
def test_node_serves_the_local_demos_own_configuration_file(name: str) -> None:
    command = services()[name]["command"]
    assert command == ["serve", f"examples/pilot/{name}/node.toml"]
    assert config_of(name) == PILOT / name / "node.toml"


def test_registry_serves_the_local_demos_own_registry_file() -> None:
    command = services()["registry"]["command"]
    assert command[:2] == ["registry", "examples/pilot/registry.toml"]
    assert command[2:] == ["--host", "0.0.0.0"]
    assert config_of("registry") == PILOT / "registry.toml"


@pytest.mark.parametrize("name", ["registry", *NODES, ONE_SHOT])
def test_every_bind_mount_comes_from_the_repository(name: str) -> None:
    for source, _, _ in binds(services()[name]):
        assert source.startswith("./"), source
        assert (ROOT / source).is_dir(), source


@pytest.mark.parametrize("name", ["registry", *NODES])
def test_servers_mount_the_configuration_and_the_keys_volume_read_only(name: str) -> None:
    mounts = {source: (target, mode) for source, target, mode in binds(services()[name])}
    assert mounts == {"./examples/pilot": (str(workdir() / "examples/pilot"), "ro")}
    assert f"keys:{workdir() / 'keys'}:ro" in services()[name]["volumes"]


@pytest.mark.parametrize("name", NODES)
def test_node_keys_and_registry_ca_resolve_to_the_keys_volume(name: str) -> None:
    settings = load_node_settings(config_of(name), {})
    assert settings.keys_dir is not None
    assert settings.keys_dir.parent == ROOT / "keys"  # the repository's keys/ is where the volume sits
    assert all(ca.parent.parent == ROOT / "keys" for ca in settings.registry_ca)


def test_keys_volume_is_owned_by_the_containers_user() -> None:
    """A named volume starts as the image's folder: /app/keys, made owned by uid 1000, which
    the keys service and the servers run as, so the nodes can read what it wrote."""
    final = stages()[-1]
    assert re.search(r"useradd --uid 1000 ", final)
    assert re.search(r"install -d -o dsgo -g dsgo -m 0755 /app /app/keys", final)
    assert "keys" in compose()["volumes"]
    assert not any("user" in service for service in services().values())


@pytest.mark.parametrize("name", NODES)
def test_node_state_lives_in_its_own_volume(name: str) -> None:
    service = services()[name]
    audit = service["environment"]["DSGO_NODE_AUDIT"]
    named = [v for v in service["volumes"] if not v.startswith((".", "/", "keys:"))]
    assert named == [f"{name}-state:{PurePosixPath(audit).parent}"]
    assert f"{name}-state" in compose()["volumes"]


@pytest.mark.parametrize("name", NODES)
def test_environment_adapts_the_node_file_to_the_compose_network(name: str) -> None:
    env = services()[name]["environment"]
    settings = load_node_settings(config_of(name), env)
    assert settings.host == "0.0.0.0"
    assert settings.registry_url == f"http://registry:{port_of('registry')}"


@pytest.mark.parametrize("name", ["registry", *NODES])
def test_ports_are_published_on_loopback_as_in_the_local_demo(name: str) -> None:
    port = port_of(name)
    assert services()[name]["ports"] == [f"127.0.0.1:{port}:{port}"]


@pytest.mark.parametrize("name", ["registry", *NODES])
def test_every_server_has_a_health_check_of_its_own_health_route(name: str) -> None:
    check = services()[name]["healthcheck"]
    test = check["test"]
    assert test[:3] == ["CMD", "python", "-c"]  # no curl in a slim image
    assert f"http://127.0.0.1:{port_of(name)}/health" in test[3]
    assert {"interval", "timeout", "retries"} <= set(check)


@pytest.mark.parametrize("name", NODES)
def test_a_nodes_health_check_is_its_readiness_which_fails_by_status(name: str) -> None:
    # /health says "ready", "degraded" or "failing"; /health/ready answers 503 unless the node
    # can serve, which urlopen raises on (a check of the word "ok" never passed)
    assert (
        f"'http://127.0.0.1:{port_of(name)}/health/ready', timeout=2)"
        in services()[name]["healthcheck"]["test"][3]
    )


def test_only_the_one_shot_service_goes_without_a_health_check() -> None:
    without = {name for name, service in services().items() if "healthcheck" not in service}
    assert without == {ONE_SHOT}
    assert services()[ONE_SHOT]["restart"] == "no"


@pytest.mark.parametrize("name", NODES)
def test_nodes_wait_for_the_keys_and_a_healthy_registry(name: str) -> None:
    assert services()[name]["depends_on"] == {
        ONE_SHOT: {"condition": "service_completed_successfully"},
        "registry": {"condition": "service_healthy"},
    }


def test_registry_waits_for_the_keys() -> None:
    assert services()["registry"]["depends_on"] == {ONE_SHOT: {"condition": "service_completed_successfully"}}


def test_keys_service_makes_every_key_the_configuration_names() -> None:
    script = services()[ONE_SHOT]["command"][0]
    registry = tomllib.loads(config_of("registry").read_text())
    parties = [registry["registry"]["party_id"], *(p["id"] for p in registry["party"])]
    assert "dsgo keys ca;" in script
    for party in parties:
        assert f"dsgo keys party {party} " in script
    assert script.count("dsgo keys") == len(parties) + 1
    assert services()[ONE_SHOT]["volumes"] == [f"keys:{workdir() / 'keys'}"]


def test_keys_service_succeeds_again_when_the_keys_exist(tmp_path: Path) -> None:
    """It runs at every `docker compose up`; `dsgo keys` keeps existing keys."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    service = services()[ONE_SHOT]
    assert service["entrypoint"] == ["sh", "-c"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dsgo"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gateway.cli "$@"\n')
    shim.chmod(0o755)
    (tmp_path / "keys").mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    runs = [
        subprocess.run(
            [sh, "-c", service["command"][0]], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert "wrote" in runs[0].stdout and "wrote" not in runs[1].stdout and "kept" in runs[1].stdout
    assert len(list((tmp_path / "keys").glob("EU.EORI.*/chain.pem"))) == 5


def test_registry_publishes_each_partys_compose_endpoint() -> None:
    pairs = dict(
        item.split("=", 1)
        for item in services()["registry"]["environment"]["DSGO_PARTY_ENDPOINTS"].split(",")
    )
    expected = {
        load_node_settings(config_of(name), {}).party_id: f"http://{name}:{port_of(name)}" for name in NODES
    }
    assert pairs == expected
    registered = {p["id"] for p in tomllib.loads(config_of("registry").read_text())["party"]}
    assert set(pairs) == registered


@pytest.mark.parametrize("name", NODES)
def test_node_is_reachable_under_its_namespace_host_name(name: str) -> None:
    host = urlsplit(load_node_settings(config_of(name), {}).base_iri).hostname
    assert host in services()[name]["networks"]["default"]["aliases"]


@pytest.mark.parametrize("name", ["registry", *NODES, ONE_SHOT])
def test_every_service_runs_the_one_image(name: str) -> None:
    service = services()[name]
    assert service["image"] == "dsgo-gateway:pilot"
    assert service["build"] == {
        "context": ".",
        "args": {"PYTHON_IMAGE": "${DSGO_PYTHON_IMAGE:-python:3.11-slim}"},
    }


# -- the image ---------------------------------------------------------------------------


def stages() -> list[str]:
    return re.split(r"(?m)^FROM ", DOCKERFILE.read_text())[1:]


def test_image_is_built_in_stages_on_python_slim() -> None:
    assert len(stages()) >= 2
    assert re.search(r"(?m)^ARG PYTHON_IMAGE=python:3\.11-slim$", DOCKERFILE.read_text())
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages())


def test_final_stage_has_no_compiler_or_build_tools() -> None:
    final = stages()[-1]
    for tool in ("gcc", "g++", "build-essential", "make ", "apt-get install", "cargo", "rustc"):
        assert tool not in final, tool
    assert "COPY --from=build /dist" in final  # the wheel comes from the build stage


def test_final_stage_installs_the_wheel_and_copies_no_source() -> None:
    final = stages()[-1]
    assert re.search(r"pip install .*dsgo_gateway-\*\.whl\)\[ifc\]", final)
    assert not re.findall(r"(?m)^COPY (?!--from)", final)
    assert "PYTHONPATH" not in final


def test_build_stage_makes_the_wheel_as_python_m_build_does() -> None:
    build = stages()[0]
    assert "pip wheel --no-deps --wheel-dir /dist ." in build


def test_no_line_needs_an_image_beyond_the_base() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?m)^#\s*syntax=", text)  # it would fetch a frontend image
    assert "--mount" not in text  # the classic builder compose uses without buildx has none
    assert set(re.findall(r"(?m)^FROM (\S+)", text)) == {"${PYTHON_IMAGE}"}


def test_final_stage_runs_as_a_non_root_user_with_dsgo_as_entry_point() -> None:
    final = stages()[-1]
    assert re.search(r"(?m)^USER (?!root)\S+$", final)
    assert re.search(r'(?m)^ENTRYPOINT \["dsgo"\]$', final)


def test_image_bakes_in_no_keys_and_only_the_wheels_data() -> None:
    """The build stage copies what the wheel is made of (examples/pilot is package data of
    the wheel, for `dsgo demo`); no key, state or dotfile."""
    copies = re.findall(r"(?m)^COPY (?!--from)(.+)$", DOCKERFILE.read_text())
    sources = [part for line in copies for part in line.split()[:-1]]
    assert sources and not any(s.startswith(("keys", ".", "examples/pilot/state")) for s in sources)
    assert {s for s in sources if s.startswith("examples")} == {"examples/pilot"}


def test_build_context_holds_what_the_image_copies_and_no_keys() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    assert patterns[0] == "**"  # everything out, then only what the image needs back in
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copies = re.findall(r"(?m)^COPY (?!--from)(.+)$", DOCKERFILE.read_text())
    for line in copies:
        for source in line.split()[:-1]:
            assert source.rstrip("/") in included, source
    assert not any(p.startswith(("keys", ".venv")) for p in included)
    assert "examples/pilot/state/" in patterns  # audit logs of a local run stay out
