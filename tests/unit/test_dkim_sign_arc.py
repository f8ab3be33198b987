"""ARC sealing of list posts: dkimpy's ARC verifier, with injected DNS, checks every seal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from test_dkim_sign import (
    DOMAIN,
    NOW,
    SHARED,
    TEST_RSA_PEM,
    TEST_RSA_PUBLIC,
    cached_rsa_key,
    personal,
    results,
)

from mailer.arc_seal import Sealer
from mailer.dkim_sign import Signer
from mailer.dkim_verify import static_dns
from mailer.errors import SettingsError

pytest.importorskip("authres", reason="dkimpy's ARC code needs authres")

DNS = static_dns({
    f"cm-rsa._domainkey.{DOMAIN}": f"v=DKIM1; k=rsa; p={TEST_RSA_PUBLIC}",
    "up._domainkey.forwarder.example": f"v=DKIM1; k=rsa; p={TEST_RSA_PUBLIC}",
})
RESULTS = ["dkim=pass header.d=sanmateo.example header.s=s1",
           "spf=pass smtp.mailfrom=sanmateo.example", "dmarc=pass header.from=sanmateo.example"]


def sealer(domain: str = DOMAIN, selector: str = "cm-rsa") -> Sealer:
    return Sealer(authserv_id=domain, domain=domain, selector=selector, pem=TEST_RSA_PEM,
                  dnsfunc=DNS, clock=lambda: NOW)


def arc(message: bytes) -> tuple[str, str]:
    cv, _, reason = dkim.arc_verify(message, dnsfunc=DNS)
    return ("ended" if cv is None else cv.decode()), reason


def tag(arc_set: bytes, header: str, name: str) -> str:
    line = re.search(rb"^" + header.encode() + rb":(.*?)(?=\r\n\S|\Z)", arc_set, re.S | re.M)
    assert line is not None
    found = re.search(rb"(?:^|[;\s])" + name.encode() + rb"=([^;\s]+)", line.group(1))
    assert found is not None
    return found.group(1).decode()


def test_a_sealed_post_verifies_and_records_what_the_list_saw() -> None:
    arc_set = sealer().seal(SHARED, results=RESULTS)
    assert arc(arc_set + SHARED) == ("pass", "success")
    assert tag(arc_set, "ARC-Seal", "i") == "1" and tag(arc_set, "ARC-Seal", "cv") == "none"
    aar = arc_set[arc_set.index(b"ARC-Authentication-Results:"):].decode()
    for result in [*RESULTS, "arc=none"]:
        assert result.split()[0] in aar
    assert b"\r\nAuthentication-Results:" not in b"\r\n" + arc_set  # only the ARC set


def test_the_seal_survives_personal_lines_and_dkim_signing() -> None:
    shared = sealer().seal(SHARED, results=RESULTS) + SHARED
    prepared = Signer(DOMAIN, [cached_rsa_key()], clock=lambda: NOW).prepare(shared)
    for token in ("tok-1", "tok-2"):
        head = personal(token)
        copy = prepared.sign(head) + head + shared
        assert arc(copy)[0] == "pass"
        assert results(copy) == [True]


def test_a_body_changed_after_sealing_fails() -> None:
    sealed = sealer().seal(SHARED, results=RESULTS) + SHARED
    assert arc(sealed + b"appended\r\n")[0] == "fail"


def upstream(message: bytes) -> bytes:
    """The post as a forwarder that sealed it (instance 1) hands it to the list."""
    forwarder = sealer("forwarder.example", "up")
    return forwarder.seal(message, results=["spf=pass smtp.mailfrom=sanmateo.example"]) + message


def test_a_chain_the_post_arrived_with_is_continued() -> None:
    raw = upstream(SHARED)
    ours = sealer()
    assert ours.chain_status(raw) == "pass"
    arc_set = ours.seal(raw, results=RESULTS, chain="pass")
    assert tag(arc_set, "ARC-Seal", "i") == "2" and tag(arc_set, "ARC-Seal", "cv") == "pass"
    assert arc(arc_set + raw) == ("pass", "success")


def test_a_broken_incoming_chain_is_sealed_as_failed() -> None:
    raw = upstream(SHARED) + b"changed after the forwarder sealed it\r\n"
    ours = sealer()
    assert ours.chain_status(raw) == "fail"
    arc_set = ours.seal(raw, results=RESULTS, chain="fail")
    assert tag(arc_set, "ARC-Seal", "cv") == "fail"


def test_a_post_that_arrived_without_arc_starts_a_new_chain() -> None:
    ours = sealer()
    assert ours.chain_status(SHARED) == "none"
    arc_set = ours.seal(SHARED, results=RESULTS, chain="pass")  # its ARC sets were dropped
    assert tag(arc_set, "ARC-Seal", "i") == "1" and tag(arc_set, "ARC-Seal", "cv") == "none"


def test_results_must_be_single_line_resinfo() -> None:
    with pytest.raises(ValueError, match="single-line"):
        sealer().seal(SHARED, results=["dkim=pass\r\nX-Evil: 1"])
    with pytest.raises(ValueError, match="chain"):
        sealer().seal(SHARED, results=RESULTS, chain="maybe")


@dataclass(frozen=True)
class ArcConfig:
    list_domain: str = DOMAIN
    dkim_key: Path | None = None
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_ed25519_key: Path | None = None
    dkim_ed25519_selector: str = ""
    arc_seal: bool = True
    arc_authserv_id: str = ""


def test_settings_turn_sealing_on_with_the_dkim_key(tmp_path: Path) -> None:
    key = tmp_path / "rsa.key"
    key.write_bytes(TEST_RSA_PEM)
    key.chmod(0o600)
    assert Sealer.from_settings(ArcConfig(arc_seal=False)) is None
    built = Sealer.from_settings(ArcConfig(dkim_key=key, dkim_selector="cm-rsa"), dnsfunc=DNS)
    assert built is not None
    assert (built.authserv_id, built.domain, built.selector) == (DOMAIN, DOMAIN, "cm-rsa")
    assert arc(built.seal(SHARED, results=RESULTS) + SHARED)[0] == "pass"
    with pytest.raises(SettingsError, match="CITYMAIL_ARC_SEAL needs CITYMAIL_DKIM_KEY"):
        Sealer.from_settings(ArcConfig())
    with pytest.raises(SettingsError, match="CITYMAIL_ARC_AUTHSERV_ID must be a host name"):
        Sealer.from_settings(ArcConfig(dkim_key=key, dkim_selector="cm-rsa",
                                       arc_authserv_id="bad id;"))
