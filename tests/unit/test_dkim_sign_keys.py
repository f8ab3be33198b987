"""DKIM keys: settings that fail early with the fix, key files, and ``citymail dkim keygen``."""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from test_dkim_sign import (
    DOMAIN,
    NOW,
    RFC_ED25519_SEED,
    SHARED,
    TEST_RSA_PEM,
    WEAK_RSA_PEM,
    personal,
    results,
)

from citymail.dkim_cli import add_dkim_verbs, txt_record
from mailer.dkim_sign import ED25519_PKCS8_PREFIX, Signer, load_key
from mailer.dkim_verify import static_dns
from mailer.errors import CitymailError, SettingsError
from mailer.settings import Settings

NACL = importlib.util.find_spec("nacl") is not None
CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None
needs_nacl = pytest.mark.skipif(not NACL, reason="Ed25519 needs PyNaCl")

ED25519_PEM = ("-----BEGIN PRIVATE KEY-----\n"
               + base64.b64encode(ED25519_PKCS8_PREFIX + base64.b64decode(RFC_ED25519_SEED))
               .decode() + "\n-----END PRIVATE KEY-----\n").encode()


@dataclass(frozen=True)
class DkimConfig:
    """The CITYMAIL_DKIM_* settings as mailer.settings.Settings will carry them."""

    list_domain: str = DOMAIN
    dkim_key: Path | None = None
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_ed25519_key: Path | None = None
    dkim_ed25519_selector: str = ""


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    files = {"rsa": TEST_RSA_PEM, "ed25519": ED25519_PEM, "weak": WEAK_RSA_PEM,
             "seed": RFC_ED25519_SEED.encode() + b"\n", "junk": b"hello\n",
             "encrypted": b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
                          b"-----END ENCRYPTED PRIVATE KEY-----\n"}
    out = {}
    for name, data in files.items():
        path = tmp_path / f"{name}.key"
        path.write_bytes(data)
        path.chmod(0o600)
        out[name] = path
    return out


def test_no_key_means_no_signing() -> None:
    assert Signer.from_settings(DkimConfig()) is None


def test_settings_build_an_rsa_signer_for_the_list_domain(keys: dict[str, Path]) -> None:
    signer = Signer.from_settings(DkimConfig(dkim_key=keys["rsa"], dkim_selector="cm-rsa"))
    assert signer is not None and signer.domain == DOMAIN
    assert [(k.selector, k.algorithm, k.bits) for k in signer.keys] == [
        ("cm-rsa", "rsa-sha256", 2048)]
    signer.clock = lambda: NOW
    assert results(signer.sign(SHARED) + SHARED) == [True]


@needs_nacl
@pytest.mark.parametrize("form", ["ed25519", "seed"])  # openssl genpkey's PEM, dkimpy's base64
def test_settings_add_an_ed25519_signature(keys: dict[str, Path], form: str) -> None:
    config = DkimConfig(dkim_key=keys["rsa"], dkim_selector="cm-rsa",
                        dkim_ed25519_key=keys[form], dkim_ed25519_selector="cm-ed")
    signer = Signer.from_settings(config)
    assert signer is not None
    assert [k.algorithm for k in signer.keys] == ["rsa-sha256", "ed25519-sha256"]
    head = personal()
    assert results(signer.prepare(SHARED).sign(head) + head + SHARED) == [True, True]


@pytest.mark.parametrize(("change", "message"), [
    ({"dkim_ed25519_key": "ed25519", "dkim_ed25519_selector": "cm-ed"},
     "CITYMAIL_DKIM_ED25519_KEY needs CITYMAIL_DKIM_KEY too"),
    ({"dkim_key": "rsa"}, "CITYMAIL_DKIM_SELECTOR must name the selector"),
    ({"dkim_key": "missing", "dkim_selector": "s1"}, "No such file or directory; create a key"),
    ({"dkim_key": "junk", "dkim_selector": "s1"}, "neither an RSA PEM key nor an Ed25519 key"),
    ({"dkim_key": "encrypted", "dkim_selector": "s1"}, "is encrypted"),
    ({"dkim_key": "weak", "dkim_selector": "s1"}, "has 512 bits"),
    ({"dkim_key": "rsa", "dkim_selector": "bad selector!"},
     "CITYMAIL_DKIM_SELECTOR must be DNS labels"),
    ({"dkim_key": "rsa", "dkim_selector": "s1", "dkim_domain": "lists cacities"},
     "CITYMAIL_DKIM_DOMAIN: the DKIM signing domain must be DNS labels"),
    ({"dkim_key": "rsa", "dkim_selector": "s1", "dkim_ed25519_key": "ed25519"},
     "CITYMAIL_DKIM_ED25519_SELECTOR must name"),
])
def test_bad_dkim_settings_fail_early_with_the_fix(keys: dict[str, Path], tmp_path: Path,
                                                   change: dict[str, str], message: str) -> None:
    values = {k: (keys.get(v, tmp_path / v) if k.endswith("_key") else v)
              for k, v in change.items()}
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Signer.from_settings(replace(DkimConfig(), **values))


@needs_nacl
@pytest.mark.parametrize(("change", "message"), [
    ({"dkim_key": "ed25519", "dkim_selector": "s1"}, "CITYMAIL_DKIM_KEY must be an RSA key"),
    ({"dkim_key": "rsa", "dkim_selector": "s1", "dkim_ed25519_key": "rsa",
      "dkim_ed25519_selector": "s2"}, "CITYMAIL_DKIM_ED25519_KEY must be an Ed25519 key"),
    ({"dkim_key": "rsa", "dkim_selector": "s1", "dkim_ed25519_key": "ed25519",
      "dkim_ed25519_selector": "S1"}, "must differ from CITYMAIL_DKIM_SELECTOR"),
])
def test_keys_in_the_wrong_place_are_refused(keys: dict[str, Path], change: dict[str, str],
                                             message: str) -> None:
    values = {k: (keys[v] if k.endswith("_key") else v) for k, v in change.items()}
    with pytest.raises(SettingsError, match=message):
        Signer.from_settings(replace(DkimConfig(), **values))


def test_ed25519_without_pynacl_says_what_to_install(keys: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nacl.signing", None)
    monkeypatch.setitem(sys.modules, "nacl", None)
    config = DkimConfig(dkim_key=keys["rsa"], dkim_selector="s1",
                        dkim_ed25519_key=keys["ed25519"], dkim_ed25519_selector="s2")
    with pytest.raises(SettingsError, match=r"pip install 'pynacl>=1.5'"):
        Signer.from_settings(config)


def test_a_key_others_can_read_is_logged(keys: dict[str, Path],
                                         caplog: pytest.LogCaptureFixture) -> None:
    keys["rsa"].chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="mailer.dkim_sign"):
        load_key(keys["rsa"], "s1")
    assert "chmod 600" in caplog.text


# -- citymail dkim keygen ---------------------------------------------------------------------
def keygen(*argv: str, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citymail")
    add_dkim_verbs(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["dkim", "keygen", *argv])
    return int(args.func(args, settings or Settings()))


def txt_value(line: str) -> str:
    """Join the quoted strings of a zone-file TXT line as DNS does."""
    strings = line.split(" IN TXT ", 1)[1]
    return "".join(part for part in strings.split('"')[1::2])


@pytest.mark.parametrize("kind", [
    pytest.param("rsa", marks=pytest.mark.skipif(not CRYPTOGRAPHY, reason="needs cryptography")),
    pytest.param("ed25519", marks=needs_nacl),
])
def test_keygen_writes_a_private_key_and_prints_a_record_that_verifies(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dkim"
    assert keygen("--type", kind, "--selector", f"cm-{kind}", "--out", str(out)) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f'cm-{kind}._domainkey.{DOMAIN} IN TXT "v=DKIM1; k={kind}; p=')
    strings = line.split(" IN TXT ", 1)[1].split('"')[1::2]
    assert all(len(s) <= 255 for s in strings) and len(strings) == (2 if kind == "rsa" else 1)
    key_file = out / f"cm-{kind}.key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    signer = Signer(DOMAIN, [load_key(key_file, f"cm-{kind}")])
    dns = static_dns({f"cm-{kind}._domainkey.{DOMAIN}": txt_value(line)})
    import dkim

    assert dkim.verify(signer.sign(SHARED) + SHARED, dnsfunc=dns)


@needs_nacl
def test_keygen_json_and_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    assert keygen("--type", "ed25519", "--json", "--domain", "Mail.CaCities.org",
                  settings=settings) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["selector"].startswith("citymail-ed25519-20")
    assert data["domain"] == "mail.cacities.org"
    assert data["key_file"] == str(tmp_path / "var" / "dkim" / f"{data['selector']}.key")
    assert data["settings"] == {"CITYMAIL_DKIM_ED25519_KEY": data["key_file"],
                                "CITYMAIL_DKIM_ED25519_SELECTOR": data["selector"],
                                "CITYMAIL_DKIM_DOMAIN": "mail.cacities.org"}
    assert "PRIVATE" not in json.dumps(data)


@needs_nacl
def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    assert keygen("--type", "ed25519", "--selector", "s1", "--out", str(tmp_path)) == 0
    before = (tmp_path / "s1.key").read_bytes()
    with pytest.raises(CitymailError, match="exists; choose another --selector"):
        keygen("--type", "ed25519", "--selector", "s1", "--out", str(tmp_path))
    assert (tmp_path / "s1.key").read_bytes() == before


def test_keygen_refuses_a_bad_selector(tmp_path: Path) -> None:
    with pytest.raises(CitymailError, match="--selector must be DNS labels"):
        keygen("--selector", "a b", "--out", str(tmp_path))


def test_txt_record_cuts_the_value_into_255_character_strings() -> None:
    record = "v=DKIM1; k=rsa; p=" + "A" * 600
    line = txt_record("s1", "lists.example.org", record)
    strings = line.split(" IN TXT ", 1)[1].split('"')[1::2]
    assert [len(s) for s in strings] == [255, 255, 108] and "".join(strings) == record
