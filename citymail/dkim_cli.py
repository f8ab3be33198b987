"""``citymail dkim keygen``: make a DKIM key and print the DNS record that publishes it.

    citymail dkim keygen [--selector S] [--domain D] [--type rsa|ed25519] [--out DIR] [--json]

Writes ``DIR/SELECTOR.key`` (mode 0600, never over an existing file) and prints
``SELECTOR._domainkey.DOMAIN IN TXT "v=DKIM1; k=…; p=…"`` with the value cut into
strings of at most 255 characters (RFC 1035 character-strings; DNS joins them).

* rsa: 2048 bits, PEM in PKCS #1 form (``RSA PRIVATE KEY``), which dkimpy, OpenDKIM and
  rspamd all read, so the key can move to the relay unchanged.  Needs ``cryptography``.
* ed25519 (RFC 8463): PEM in PKCS #8 form (``PRIVATE KEY``, as ``openssl genpkey``
  writes it); p= is the raw 32-byte public key.  Needs PyNaCl.

``citymail.cli`` adds the verb with ``add_dkim_verbs(sub)``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailer.dkim_sign import ED25519_PKCS8_PREFIX, check_dns_name
from mailer.errors import CitymailError
from mailer.settings import Settings

__all__ = ["KeyPair", "add_dkim_verbs", "cmd_dkim_keygen", "generate", "txt_record"]


@dataclass(frozen=True)
class KeyPair:
    """A new private key file's bytes and the value of the TXT record for its public key."""

    kind: str  # "rsa" | "ed25519"
    private_pem: bytes
    record: str  # "v=DKIM1; k=rsa; p=…"


def add_dkim_verbs(subparsers: Any) -> None:
    """Add ``dkim keygen`` to the ``citymail`` sub-parsers."""
    dkim = subparsers.add_parser("dkim", help="DKIM keys for signing outgoing mail").add_subparsers(
        dest="dkim_verb", required=True, metavar="ACTION")
    s = dkim.add_parser("keygen", help="make a DKIM private key and print its DNS TXT record")
    s.add_argument("--type", choices=["rsa", "ed25519"], default="rsa",
                   help="rsa (2048 bits, what every receiver checks; default) or ed25519 "
                        "(RFC 8463, a second signature beside RSA)")
    s.add_argument("--selector", help="DNS label for the key (default citymail-TYPE-YYYYMM)")
    s.add_argument("--domain", help="signing domain d= (default CITYMAIL_DKIM_DOMAIN, else "
                                    "CITYMAIL_LIST_DOMAIN)")
    s.add_argument("--out", type=Path, help="folder for the key file (default VAR_DIR/dkim)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dkim_keygen)


def generate(kind: str) -> KeyPair:
    """Return a new RSA-2048 or Ed25519 key pair."""
    if kind == "rsa":
        try:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
        except ImportError:
            raise CitymailError("RSA key generation needs cryptography: pip install "
                                "'cryptography>=41' (or: openssl genrsa -traditional -out "
                                "FILE 2048)") from None
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        return KeyPair("rsa", pem, f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}")
    if kind == "ed25519":
        try:
            import nacl.signing
        except ImportError:
            raise CitymailError("Ed25519 keys need PyNaCl: pip install 'pynacl>=1.5'") from None
        signing = nacl.signing.SigningKey.generate()
        der = base64.b64encode(ED25519_PKCS8_PREFIX + bytes(signing)).decode()
        pem = f"-----BEGIN PRIVATE KEY-----\n{der}\n-----END PRIVATE KEY-----\n".encode()
        public = base64.b64encode(bytes(signing.verify_key)).decode()
        return KeyPair("ed25519", pem, f"v=DKIM1; k=ed25519; p={public}")
    raise CitymailError(f"--type must be rsa or ed25519, got {kind!r}")


def txt_record(selector: str, domain: str, record: str) -> str:
    """Return the zone-file line, the value cut into strings of at most 255 characters."""
    strings = " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))
    return f"{selector}._domainkey.{domain} IN TXT {strings}"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CitymailError(f"{path} exists; choose another --selector (a new key needs a new "
                            "selector) or remove the old file") from None
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)


def cmd_dkim_keygen(args: argparse.Namespace, settings: Settings) -> int:
    month = dt.datetime.now(dt.UTC).strftime("%Y%m")
    selector = check_dns_name(args.selector or f"citymail-{args.type}-{month}", "--selector")
    domain = check_dns_name(args.domain or getattr(settings, "dkim_domain", "")
                             or settings.list_domain, "--domain")
    out = args.out or Path(settings.var_dir) / "dkim"
    pair = generate(args.type)
    path = out / f"{selector}.key"
    _write_private(path, pair.private_pem)
    line = txt_record(selector, domain, pair.record)
    infix = "ED25519_" if args.type == "ed25519" else ""
    env = {f"CITYMAIL_DKIM_{infix}KEY": str(path), f"CITYMAIL_DKIM_{infix}SELECTOR": selector}
    if domain != settings.list_domain:
        env["CITYMAIL_DKIM_DOMAIN"] = domain
    if args.json:
        print(json.dumps({"type": pair.kind, "selector": selector, "domain": domain,
                          "key_file": str(path), "dns_name": f"{selector}._domainkey.{domain}",
                          "record": pair.record, "txt": line, "settings": env}))
        return 0
    print(f"citymail: wrote {path} ({'RSA 2048' if args.type == 'rsa' else 'Ed25519'}, "
          "mode 0600); publish the record below, then set "
          + " ".join(f"{k}={v}" for k, v in env.items()), file=sys.stderr)
    print(line)
    return 0
