"""`citymail postfix maps`: Postfix accepts exactly the addresses the gateway knows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ops_scene import run_cli

from citymail.postfix_cli import maps_for, recipient_addresses
from mailer.addresses import AddressTable, Target

LISTS = [("city-clerks", "list"), ("advocate", "newsletter")]
DOMAIN = "lists.cacities.org"


def test_every_mapped_address_is_one_the_gateway_accepts() -> None:
    addresses = recipient_addresses(LISTS, DOMAIN)
    table = AddressTable(DOMAIN, LISTS)
    for address in addresses:
        if "-confirm@" in address:  # needs its +TOKEN, which Postfix strips for the lookup
            address = address.replace("-confirm@", "-confirm+t0k@")
        assert isinstance(table.resolve(address), Target), address
    for wanted in ("city-clerks", "city-clerks-request", "city-clerks-join",
                   "city-clerks-leave", "city-clerks-owner", "city-clerks-bounces",
                   "advocate-bounces", "advocate-request", "citymail-owner",
                   "citymail-bounces"):
        assert f"{wanted}@{DOMAIN}" in addresses
    assert f"advocate@{DOMAIN}" not in addresses  # nobody posts to a newsletter


def test_maps_send_the_list_domain_to_the_gateway() -> None:
    maps = maps_for(LISTS, domain=DOMAIN, gateway="[127.0.0.1]:8025")
    assert maps["transport"].splitlines()[-1] == f"{DOMAIN} smtp:[127.0.0.1]:8025"
    assert f"city-clerks-bounces@{DOMAIN} OK" in maps["relay_recipients"].splitlines()


def test_the_command_writes_maps_for_every_list(env: dict[str, str], tmp_path: Path,
                                                monkeypatch, capsys) -> None:
    out = tmp_path / "postfix"
    args = ("postfix", "maps", "-o", str(out), "--gateway", "10.0.0.5:2525")
    first = run_cli(env, monkeypatch, capsys, *args)
    assert "2 of 2 maps changed" in first.stdout
    recipients = (out / "relay_recipients").read_text()
    assert "legislative-alerts-request@lists.cacities.org OK" in recipients
    assert "western-city-bounces@lists.cacities.org OK" in recipients
    assert (out / "transport").read_text().endswith(
        "lists.cacities.org smtp:[10.0.0.5]:2525\n")
    again = run_cli(env, monkeypatch, capsys, *args)
    assert "0 of 2 maps changed" in again.stdout  # Postfix is not disturbed for nothing
    bad = run_cli(env, monkeypatch, capsys, "postfix", "maps", "--gateway", "nowhere")
    assert bad.returncode == 2 and "--gateway must be HOST:PORT" in bad.stderr


@pytest.mark.skipif(shutil.which("postmap") is None and not Path("/usr/sbin/postmap").exists(),
                    reason="Postfix is not installed")
def test_postmap_finds_a_verp_address_by_its_base(env: dict[str, str], tmp_path: Path,
                                                   monkeypatch, capsys) -> None:
    out = tmp_path / "postfix"
    run_cli(env, monkeypatch, capsys, "postfix", "maps", "-o", str(out), "--postmap")
    postmap = shutil.which("postmap") or "/usr/sbin/postmap"
    table = f"hash:{out / 'relay_recipients'}"
    found = subprocess.run([postmap, "-q", f"city-clerks-bounces@{DOMAIN}", table],
                           capture_output=True, text=True)
    assert found.stdout.strip() == "OK"
    missing = subprocess.run([postmap, "-q", f"no-such-list@{DOMAIN}", table],
                             capture_output=True, text=True)
    assert missing.returncode == 1
