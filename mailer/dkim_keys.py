"""DKIM signing keys: loading and checking RSA and Ed25519 private keys.

Split from ``mailer.dkim_sign``, which signs with them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dkim.crypto import RSASSA_PKCS1_v1_5_sign, UnparsableKeyError, parse_pem_private_key

from mailer.errors import CitymailError, SettingsError

__all__ = [
    "ED25519_PKCS8_PREFIX",
    "SigningError",
    "SigningKey",
    "check_dns_name",
    "ed25519_key",
    "load_key",
    "rsa_key",
    "settings_key",
]

log = logging.getLogger(__name__)

ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
"""DER of an RFC 8410 Ed25519 PrivateKeyInfo up to the 32-byte seed (OpenSSL's format)."""

_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}"
                       r"[a-z0-9])?)*", re.IGNORECASE)
class SigningError(CitymailError):
    """The message cannot be signed (its header block is not one dkimpy can read)."""


@dataclass(frozen=True)
class SigningKey:
    """One private key, the selector that publishes its public half, and how it signs."""

    selector: str
    algorithm: str  # "rsa-sha256" | "ed25519-sha256"
    backend: str  # "cryptography" | "dkimpy" | "pynacl"
    bits: int
    sign_digest: Callable[[Any], bytes] = field(repr=False)  # a finished sha256 object → b=


def check_dns_name(selector: str, what: str) -> str:
    """Return *selector* (a selector or a domain) in lower case, or say how it is wrong."""
    if not _SELECTOR.fullmatch(selector or ""):
        raise SettingsError(f"{what} must be DNS labels (letters, digits, hyphens, dots) such "
                            f"as citymail-rsa-202611, got {selector!r}")
    return selector.lower()


def rsa_key(pem: bytes, selector: str, *, backend: str = "auto") -> SigningKey:
    """Return an rsa-sha256 key from PEM (PKCS #1 or #8), signing with *backend*.

    *backend* is "cryptography" (OpenSSL), "dkimpy" (pure Python) or "auto" (the first
    one installed).  Keys under 1024 bits are refused (RFC 8301).
    """
    selector = check_dns_name(selector, "the selector")
    if b"ENCRYPTED" in pem:
        raise SettingsError("the RSA key is encrypted; citymail needs an unencrypted PEM file "
                            "readable only by its own user (chmod 600)")
    if backend in ("auto", "cryptography"):
        try:
            from cryptography.exceptions import UnsupportedAlgorithm
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
        except ImportError:
            if backend == "cryptography":
                raise SettingsError("the cryptography backend needs: pip install "
                                    "'cryptography>=41'") from None
        else:
            try:
                key = serialization.load_pem_private_key(pem, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise SettingsError(f"not a usable RSA private key in PEM form: {exc}") from None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise SettingsError("not an RSA key (Ed25519 keys go in "
                                    "CITYMAIL_DKIM_ED25519_KEY)")
            _check_bits(key.key_size)
            pad, prehashed = padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())

            def openssl_sign(h: Any) -> bytes:
                return key.sign(h.digest(), pad, prehashed)

            return SigningKey(selector, "rsa-sha256", "cryptography", key.key_size,
                              openssl_sign)
    try:
        pk = parse_pem_private_key(pem)
    except (UnparsableKeyError, binascii.Error, ValueError) as exc:
        raise SettingsError(f"not a usable RSA private key in PEM form: "
                            f"{str(exc).splitlines()[0]}") from None
    bits = pk["modulus"].bit_length()
    _check_bits(bits)

    def python_sign(h: Any) -> bytes:
        return bytes(RSASSA_PKCS1_v1_5_sign(h, pk))

    return SigningKey(selector, "rsa-sha256", "dkimpy", bits, python_sign)


def _check_bits(bits: int) -> None:
    if bits < 1024:
        raise SettingsError(f"the RSA key has {bits} bits; receivers ignore keys under 1024 "
                            "(RFC 8301); make a 2048-bit one with: citymail dkim keygen")


def ed25519_key(seed: bytes, selector: str) -> SigningKey:
    """Return an ed25519-sha256 key (RFC 8463) from its 32-byte seed; needs PyNaCl."""
    selector = check_dns_name(selector, "the selector")
    try:
        import nacl.signing
    except ImportError:
        raise SettingsError("Ed25519 signing needs PyNaCl: pip install 'pynacl>=1.5'") from None
    if len(seed) != 32:
        raise SettingsError(f"an Ed25519 seed has 32 bytes, got {len(seed)}")
    key = nacl.signing.SigningKey(seed)

    def nacl_sign(h: Any) -> bytes:
        return bytes(key.sign(h.digest()).signature)

    return SigningKey(selector, "ed25519-sha256", "pynacl", 256, nacl_sign)


def load_key(path: Path, selector: str, *, backend: str = "auto") -> SigningKey:
    """Read a key file: RSA PEM, Ed25519 PKCS #8 PEM (OpenSSL), or dkimpy's base64 seed."""
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror or exc}; create a key with: "
                            "citymail dkim keygen") from None
    if mode & 0o077:
        log.warning("DKIM key %s is readable by other users; chmod 600 it", path)
    try:
        return _parse_key(data, selector, backend)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None


def _parse_key(data: bytes, selector: str, backend: str) -> SigningKey:
    if b"-----BEGIN PRIVATE KEY-----" in data:
        der = _pem_body(data)
        if der.startswith(ED25519_PKCS8_PREFIX) and len(der) == len(ED25519_PKCS8_PREFIX) + 32:
            return ed25519_key(der[len(ED25519_PKCS8_PREFIX):], selector)
    if b"-----BEGIN" in data:
        return rsa_key(data, selector, backend=backend)
    try:
        raw = base64.b64decode(b"".join(data.split()), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) in (32, 64):  # dkimpy's dknewkey writes the seed; NaCl's secret key is 64
        return ed25519_key(raw[:32], selector)
    raise SettingsError("neither an RSA PEM key nor an Ed25519 key; create one with: "
                        "citymail dkim keygen")


def _pem_body(data: bytes) -> bytes:
    lines = [line for line in data.splitlines() if line and not line.startswith(b"-----")]
    try:
        return base64.b64decode(b"".join(lines))
    except binascii.Error:
        return b""


def settings_key(path: Path, selector: str, infix: str, backend: str) -> SigningKey:
    name = f"CITYMAIL_DKIM_{infix}KEY"
    if not selector:
        raise SettingsError(f"{name} is set, so CITYMAIL_DKIM_{infix}SELECTOR must name the "
                            "selector its public key is published under")
    check_dns_name(selector, f"CITYMAIL_DKIM_{infix}SELECTOR")
    try:
        return load_key(path, selector, backend=backend)
    except SettingsError as exc:
        raise SettingsError(f"{name} {exc}") from None
