"""``dsgo keys``: a development CA and party certificates, never overwritten unasked."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from gateway.cli import main
from gateway.config import load_node_settings
from gateway.errors import ConfigError, KeyFileError
from gateway.identity.pki import load_identity, party_id_of
from tests.conftest import write_node


def test_keys_commands_make_a_ca_and_a_party_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "keys" / "ca"
    assert main(["keys", "ca", "--dir", str(ca)]) == 0
    assert main(["keys", "party", "EU.EORI.NL000000001", "--ca", str(ca), "--name", "Bouw"]) == 0
    party = tmp_path / "keys" / "EU.EORI.NL000000001"
    identity = load_identity(party)
    assert identity.party_id == "EU.EORI.NL000000001"
    assert len(identity.chain) == 3
    assert party_id_of(identity.chain[0]) == "EU.EORI.NL000000001"
    assert identity.chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "Bouw"
    assert stat.S_IMODE((party / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((ca / "root.key.pem").stat().st_mode) == 0o600
    assert "***" in repr(identity) and "PRIVATE" not in repr(identity)
    assert str(party / "chain.pem") in capsys.readouterr().out


def test_existing_keys_are_kept_and_reported_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    assert main(["keys", "ca", "--dir", str(ca)]) == 0
    before = (ca / "root.key.pem").read_bytes()
    capsys.readouterr()
    assert main(["keys", "ca", "--dir", str(ca)]) == 0
    assert capsys.readouterr().out.startswith(f"kept {ca}: a CA is there already")
    assert (ca / "root.key.pem").read_bytes() == before
    assert main(["keys", "ca", "--dir", str(ca), "--force"]) == 0
    assert (ca / "root.key.pem").read_bytes() != before


def test_existing_party_keys_are_kept_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    main(["keys", "ca", "--dir", str(ca)])
    assert main(["keys", "party", "EU.EORI.NL000000001", "--ca", str(ca)]) == 0
    key = (tmp_path / "EU.EORI.NL000000001" / "key.pem").read_bytes()
    capsys.readouterr()
    assert main(["keys", "party", "EU.EORI.NL000000001", "--ca", str(ca)]) == 0
    assert "kept" in capsys.readouterr().out
    assert (tmp_path / "EU.EORI.NL000000001" / "key.pem").read_bytes() == key


def test_party_keys_of_another_party_in_the_folder_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    main(["keys", "ca", "--dir", str(ca)])
    main(["keys", "party", "EU.EORI.NL000000001", "--ca", str(ca), "--dir", str(tmp_path / "x")])
    capsys.readouterr()
    assert main(["keys", "party", "EU.EORI.NL000000002", "--ca", str(ca), "--dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "holds EU.EORI.NL000000001's keys" in err and err.count("\n") == 1


def test_half_a_key_set_is_an_error_not_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca"
    main(["keys", "ca", "--dir", str(ca)])
    (ca / "issuing.key.pem").unlink()
    capsys.readouterr()
    assert main(["keys", "ca", "--dir", str(ca)]) == 2
    assert "but not issuing.key.pem" in capsys.readouterr().err


def test_party_key_needs_a_ca_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "party", "EU.EORI.NL000000001", "--ca", str(tmp_path / "none")]) == 2
    assert "dsgo keys ca" in capsys.readouterr().err


def test_party_id_must_look_like_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "party", "bob", "--ca", str(tmp_path)]) == 2
    assert "not an iSHARE party id" in capsys.readouterr().err


def test_mismatched_key_and_chain_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    main(["keys", "ca", "--dir", str(ca)])
    main(["keys", "party", "EU.EORI.NL000000001", "--ca", str(ca)])
    main(["keys", "party", "EU.EORI.NL000000002", "--ca", str(ca)])
    (tmp_path / "EU.EORI.NL000000001" / "key.pem").write_bytes(
        (tmp_path / "EU.EORI.NL000000002" / "key.pem").read_bytes()
    )
    with pytest.raises(KeyFileError, match="does not match"):
        load_identity(tmp_path / "EU.EORI.NL000000001")


@pytest.mark.parametrize("missing", ["keys.dir", "registry.url", "registry.party_id", "registry.ca"])
def test_a_closed_node_needs_keys_and_a_registry(tmp_path: Path, missing: str) -> None:
    values = {
        "keys.dir": '"keys/x"',
        "registry.url": '"http://127.0.0.1:1"',
        "registry.party_id": '"EU.EORI.NL000000000"',
        "registry.ca": '["ca.pem"]',
    }
    tables: dict[str, list[str]] = {"keys": [], "registry": []}
    for dotted, value in values.items():
        table, key = dotted.split(".")
        if dotted != missing:
            tables[table].append(f"{key} = {value}")
    extra = "".join(f"[{t}]\n" + "\n".join(lines) + "\n" for t, lines in tables.items())
    with pytest.raises(ConfigError) as err:
        load_node_settings(write_node(tmp_path, extra, open=False), {})
    assert err.value.key == missing
    assert "open = true" in err.value.expected
