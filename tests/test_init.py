"""`dsgo init` makes a party's node that loads as written, and `dsgo registry add` hands
its entry to a registry that picks it up while running."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.cli import main
from gateway.config import load_node_settings
from gateway.identity.pki import fingerprint, load_identity
from gateway.registry import load_registry_settings
from gateway.registry.live import LiveSettings
from tests.kit import REGISTRY, Clock, Pki, write_registry

NEW = "EU.EORI.NL000000104"


def init(tmp_path: Path, pki: Pki | None, *extra: str) -> tuple[int, Path]:
    folder = tmp_path / "architect"
    argv = ["init", str(folder), "--party-id", NEW, "--name", 'Architect "Noord"']
    argv += ["--base-iri", "https://data.architect.example/", "--port", "8204"]
    if pki is not None:
        argv += ["--ca", str(pki.ca), "--registry", "http://127.0.0.1:8200", "--registry-id", REGISTRY]
    return main([*argv, *extra]), folder


def test_init_with_a_development_ca_makes_a_node_that_loads(tmp_path: Path, pki: Pki) -> None:
    code, folder = init(tmp_path, pki)
    assert code == 0
    settings = load_node_settings(folder / "node.toml")
    assert (settings.party_id, settings.name, settings.port) == (NEW, 'Architect "Noord"', 8204)
    assert settings.registry_id == REGISTRY and settings.registry_url == "http://127.0.0.1:8200"
    assert settings.registry_ca == ((pki.ca / "root.cert.pem").resolve(),)
    assert load_identity(settings.keys_dir or folder).party_id == NEW
    assert main(["policy", "check", str(folder / "node.toml")]) == 0


def test_init_entry_names_the_certificate_by_its_fingerprint(tmp_path: Path, pki: Pki) -> None:
    _, folder = init(tmp_path, pki)
    party = tomllib.loads((folder / "registry-entry.toml").read_text())["party"][0]
    leaf = load_identity(folder / "keys").chain[0]
    assert party["fingerprints"] == [fingerprint(leaf)]
    assert party["namespaces"] == ["https://data.architect.example/"]
    assert party["endpoint"] == "http://127.0.0.1:8204"


def test_init_policy_shares_nothing_with_other_parties(tmp_path: Path, pki: Pki) -> None:
    _, folder = init(tmp_path, pki)
    from gateway.policy.load import load_policies, policy_files
    from gateway.vocab import load_vocab

    rules = load_policies(policy_files(folder / "policies"), load_vocab()).rules
    assert [(r.id, r.effect) for r in rules] == [("own-data", "permit")]


def test_init_without_a_ca_makes_a_key_and_a_signing_request(tmp_path: Path) -> None:
    code, folder = init(tmp_path, None)
    assert code == 0
    request = x509.load_pem_x509_csr((folder / "keys" / "request.csr.pem").read_bytes())
    assert request.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == NEW
    assert request.is_signature_valid
    assert not (folder / "registry-entry.toml").exists()


def test_init_again_keeps_every_file(tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    _, folder = init(tmp_path, pki)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert init(tmp_path, pki)[0] == 0
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert "wrote" not in capsys.readouterr().out


def test_init_with_a_registry_but_no_ca_to_trust_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = init(tmp_path, None, "--registry", "http://127.0.0.1:8200", "--registry-id", REGISTRY)
    err = capsys.readouterr().err
    assert code == 2 and "--trust FILE" in err and err.count("\n") == 1


def test_init_base_iri_must_be_a_namespace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["init", str(tmp_path / "x"), "--party-id", NEW, "--name", "X", "--base-iri", "data.x"])
    err = capsys.readouterr().err
    assert code == 2 and "ending in '/'" in err and err.count("\n") == 1


def test_registry_add_appends_the_entry_the_registry_then_loads(tmp_path: Path, pki: Pki) -> None:
    _, folder = init(tmp_path, pki)
    registry = write_registry(tmp_path, pki)
    assert main(["registry", "add", str(registry), "--from", str(folder)]) == 0
    party = {p.party_id: p for p in load_registry_settings(registry).parties}[NEW]
    assert party.namespaces == ("https://data.architect.example/",)
    assert party.certificates == {fingerprint(load_identity(folder / "keys").chain[0])}


def test_registry_add_refuses_a_party_twice_and_leaves_the_file(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    _, folder = init(tmp_path, pki)
    registry = write_registry(tmp_path, pki)
    main(["registry", "add", str(registry), "--from", str(folder)])
    before = registry.read_text()
    capsys.readouterr()
    assert main(["registry", "add", str(registry), "--from", str(folder)]) == 2
    assert "already lists EU.EORI.NL000000104" in capsys.readouterr().err
    assert registry.read_text() == before


def test_registry_add_from_a_folder_without_an_entry_says_to_init_it(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write_registry(tmp_path, pki)
    assert main(["registry", "add", str(registry), "--from", str(tmp_path / "none")]) == 2
    assert "dsgo init" in capsys.readouterr().err


def test_running_registry_serves_a_party_added_to_its_file(tmp_path: Path, pki: Pki) -> None:
    _, folder = init(tmp_path, pki)
    registry = write_registry(tmp_path, pki)
    clock = Clock()
    live = LiveSettings(load_registry_settings(registry), interval=1.0, clock=clock)
    main(["registry", "add", str(registry), "--from", str(folder)])
    assert NEW not in {p.party_id for p in live.current().parties}  # checked at most once a second
    clock.now += 1.0
    assert NEW in {p.party_id for p in live.current().parties}


def test_running_registry_keeps_its_parties_when_the_file_breaks(tmp_path: Path, pki: Pki) -> None:
    registry = write_registry(tmp_path, pki)
    clock = Clock()
    live = LiveSettings(load_registry_settings(registry), interval=1.0, clock=clock)
    before = live.current().parties
    registry.write_text(registry.read_text() + "\n[[party]]\nid = 'nonsense'\n")
    clock.now += 1.0
    assert live.current().parties == before
