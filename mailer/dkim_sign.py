"""DKIM signing of outgoing mail: the body is hashed once per message, each copy signed.

    signer = Signer.from_settings(settings)       # once per process; None when signing is off
    prepared = signer.prepare(shared)              # once per message: bh= and the shared headers
    head = personal_headers(url, mailto)           # the recipient's own lines
    data = prepared.sign(head) + head + shared     # per recipient: header hash + signature
    data = prepared.sign() + shared                # bulk: one signature for every recipient

``shared`` is the whole message built once (headers and body, CRLF line ends); ``head``
holds the header lines put in front of it for one recipient.  ``PreparedMessage.sign``
returns the DKIM-Signature field(s) to put in front of both: one rsa-sha256 signature and,
when an Ed25519 key is configured, a second ed25519-sha256 one (RFC 8463), RSA first so
that a verifier that checks only the topmost signature sees the one everybody supports.

Canonicalisation is relaxed/relaxed with dkimpy's own code (``rfc822_parse`` and the
``Relaxed`` canonicaliser), fields picked bottom-up as its ``select_headers`` does, so
what is hashed is what dkimpy, OpenDKIM or rspamd hash when they verify.  No ``l=`` (anyone
could append below the signed length), no ``x=``.  The RSA operation runs in OpenSSL through
``cryptography`` when that is installed and in dkimpy's pure-Python RSASSA-PKCS1-v1_5
otherwise; PKCS #1 v1.5 is deterministic, so both give the same bytes.  Ed25519 needs
PyNaCl.  Per recipient, 2 cores shared with other work (``bench/dkim_cost.py``, 2026-11): RSA
~1 ms with OpenSSL, ~10 ms pure Python; Ed25519 ~0.2 ms; preparing a 10 KB message ~1 ms.

Header fields signed (h=), each as often as it occurs: ``SIGNED_HEADERS``; RFC 8058
section 4 requires List-Unsubscribe and List-Unsubscribe-Post among them.  The fields in
``OVERSIGNED`` are listed once more than they occur (RFC 6376 section 8.15; Debian's
OpenDKIM oversigns From by default), so a second From, Subject, Reply-To, Content-Type or
one-click pair added on the way, or any one-click pair added to bulk mail, breaks the
signature instead of reaching the reader or a mailbox provider's unsubscribe button.

Exceptions::

    CitymailError (mailer.errors)
     ├── SettingsError   a key file is missing, unreadable, encrypted, weak or of the wrong
     │                   type, or a selector or domain is malformed (the message says the fix)
     └── SigningError    a message whose header block dkimpy cannot parse (never produced by
                         decoration): send it unsigned rather than retry it

Signing at the relay (the OpenDKIM milter in Postfix, rspamd's dkim_signing) is the
alternative: the same OpenSSL RSA operation, on the MTA's cores, with the keys kept off
the workers.  Figures and advice: ``bench/dkim_cost.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dkim
from dkim.canonicalization import Relaxed
from dkim.crypto import RSASSA_PKCS1_v1_5_sign, UnparsableKeyError, parse_pem_private_key

from mailer.errors import CitymailError, SettingsError

__all__ = [
    "OVERSIGNED",
    "SIGNED_HEADERS",
    "DkimSettings",
    "PreparedMessage",
    "Signer",
    "SigningError",
    "SigningKey",
    "check_dns_name",
    "ed25519_key",
    "load_key",
    "rsa_key",
]

log = logging.getLogger(__name__)

SIGNED_HEADERS: tuple[str, ...] = (
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
    "list-id", "list-unsubscribe", "list-unsubscribe-post", "list-post", "list-help",
    "list-subscribe", "list-owner", "list-archive",
)
"""Fields signed when present (RFC 6376 5.4.1's list, less Resent-*, plus RFC 8058's)."""

OVERSIGNED: frozenset[str] = frozenset({
    "from", "reply-to", "subject", "content-type", "list-unsubscribe", "list-unsubscribe-post",
})
"""Fields signed once more than present, so that none can be added after signing."""

ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
"""DER of an RFC 8410 Ed25519 PrivateKeyInfo up to the 32-byte seed (OpenSSL's format)."""

_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}"
                       r"[a-z0-9])?)*", re.IGNORECASE)
_WIDTH = 78


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


class DkimSettings(Protocol):
    """The settings a Signer is built from (a subset of ``mailer.settings.Settings``)."""

    list_domain: str
    dkim_key: Path | None
    dkim_selector: str
    dkim_domain: str
    dkim_ed25519_key: Path | None
    dkim_ed25519_selector: str


class Signer:
    """Signs for one domain with an RSA key and, optionally, an Ed25519 key."""

    def __init__(self, domain: str, keys: Sequence[SigningKey], *,
                 headers: Sequence[str] = SIGNED_HEADERS,
                 oversign: frozenset[str] = OVERSIGNED,
                 clock: Callable[[], float] = time.time) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        if len({k.selector for k in keys}) != len(keys):
            raise ValueError("each DKIM key needs its own selector (one DNS record each)")
        self.domain = check_dns_name(domain, "the DKIM signing domain")
        self.keys = tuple(keys)
        self.headers = tuple(dict.fromkeys(h.lower().encode("ascii") for h in headers))
        if b"from" not in self.headers:
            raise ValueError("RFC 6376 5.4: the From field must be signed")
        self.oversign = frozenset(h.lower().encode("ascii") for h in oversign)
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: DkimSettings, *, backend: str = "auto") -> Signer | None:
        """Build the process's signer; None when ``CITYMAIL_DKIM_KEY`` is not set."""
        if settings.dkim_key is None:
            if settings.dkim_ed25519_key is not None:
                raise SettingsError("CITYMAIL_DKIM_ED25519_KEY needs CITYMAIL_DKIM_KEY too: "
                                    "receivers that do not know Ed25519 need the RSA signature")
            return None
        keys = [_settings_key(settings.dkim_key, settings.dkim_selector, "", backend)]
        if keys[0].algorithm != "rsa-sha256":
            raise SettingsError("CITYMAIL_DKIM_KEY must be an RSA key (every receiver checks "
                                "RSA); put the Ed25519 key in CITYMAIL_DKIM_ED25519_KEY")
        if settings.dkim_ed25519_key is not None:
            keys.append(_settings_key(settings.dkim_ed25519_key,
                                      settings.dkim_ed25519_selector, "ED25519_", backend))
            if keys[1].algorithm != "ed25519-sha256":
                raise SettingsError("CITYMAIL_DKIM_ED25519_KEY must be an Ed25519 key; make "
                                    "one with: citymail dkim keygen --type ed25519")
            if keys[1].selector == keys[0].selector:
                raise SettingsError("CITYMAIL_DKIM_ED25519_SELECTOR must differ from "
                                    "CITYMAIL_DKIM_SELECTOR: a selector names one DNS record")
        domain = settings.dkim_domain or settings.list_domain
        try:
            signer = cls(domain, keys)
        except SettingsError as exc:
            raise SettingsError(f"CITYMAIL_DKIM_DOMAIN: {exc}") from None
        log.info("DKIM signing as d=%s with %s", signer.domain,
                 ", ".join(f"s={k.selector} ({k.algorithm}, {k.backend})" for k in keys))
        return signer

    def prepare(self, message: bytes) -> PreparedMessage:
        """Hash the body and canonicalise the header fields of the shared *message* once."""
        try:
            headers, body = dkim.rfc822_parse(message)
        except dkim.MessageFormatError as exc:
            raise SigningError(f"cannot sign: {exc}") from None
        canonical = Relaxed.canonicalize_headers(headers)
        body_hash = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
        counts = Counter(name for name, _ in canonical if name in self.headers)
        return PreparedMessage(self, body_hash, tuple(canonical), counts)

    def sign(self, message: bytes) -> bytes:
        """Return the DKIM-Signature field(s) for a whole *message* (no personal head)."""
        return self.prepare(message).sign()

    def h_tag(self, counts: Mapping[bytes, int]) -> list[bytes]:
        """Return the h= names for fields occurring *counts* times (plus oversigning)."""
        names: list[bytes] = []
        for name in self.headers:
            names.extend([name] * (counts.get(name, 0) + (name in self.oversign)))
        return names


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A shared message whose body hash and canonical header fields are known."""

    signer: Signer
    body_hash: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    counts: Counter[bytes]

    def sign(self, head: bytes = b"") -> bytes:
        """Return the DKIM-Signature field(s) for ``head + shared``, CRLF-terminated.

        *head* is the recipient's own header lines (complete, CRLF-terminated fields) that
        go in front of the shared message; the result goes in front of *head*.
        """
        signer = self.signer
        headers: Sequence[tuple[bytes, bytes]] = self.headers
        counts: Mapping[bytes, int] = self.counts
        if head:
            try:
                extra, rest = dkim.rfc822_parse(head)
            except dkim.MessageFormatError as exc:
                raise SigningError(f"cannot sign the personal header lines: {exc}") from None
            if rest.strip():
                raise SigningError("the personal head must be complete header lines only")
            canonical = Relaxed.canonicalize_headers(extra)
            headers = canonical + list(self.headers)
            counts = self.counts + Counter(n for n, _ in canonical if n in signer.headers)
        h_names = signer.h_tag(counts)
        signed = b"".join(name + b":" + value for name, value in _select(headers, h_names))
        stamp = str(int(signer.clock())).encode("ascii")
        return b"".join(self._signature(key, h_names, signed, stamp) for key in signer.keys)

    def _signature(self, key: SigningKey, h_names: list[bytes], signed: bytes,
                   stamp: bytes) -> bytes:
        tokens = [b"v=1;", b"a=" + key.algorithm.encode("ascii") + b";", b"c=relaxed/relaxed;",
                  b"d=" + self.signer.domain.encode("ascii") + b";",
                  b"s=" + key.selector.encode("ascii") + b";", b"t=" + stamp + b";"]
        tokens += [b"h=" + h_names[0]] + [b": " + n for n in h_names[1:]]
        tokens[-1] += b";"
        tokens += [b"bh=" + self.body_hash + b";", b"b="]
        value = _fold(tokens)
        # RFC 6376 3.7: the signed fields, then this field with an empty b= and no final CRLF.
        ((name, canonical),) = Relaxed.canonicalize_headers([(b"DKIM-Signature", value)])
        h = hashlib.sha256(signed + name + b":" + canonical.rstrip())
        signature = base64.b64encode(key.sign_digest(h))
        return b"DKIM-Signature:" + _fold_b64(value, signature) + b"\r\n"


def _select(headers: Sequence[tuple[bytes, bytes]], names: list[bytes]) -> list[
        tuple[bytes, bytes]]:
    """Pick the fields *names* sign as dkimpy's ``select_headers`` does: per name, the
    bottom-most instance not yet taken; a name with none left (oversigning) takes nothing."""
    stacks: dict[bytes, list[int]] = {}
    for index, (name, _) in enumerate(headers):
        stacks.setdefault(name, []).append(index)
    picked = []
    for name in names:
        stack = stacks.get(name)
        if stack:
            picked.append(headers[stack.pop()])
    return picked


def _fold(tokens: list[bytes]) -> bytes:
    """Join tokens with spaces, folding before a token that would pass column 78."""
    out = bytearray()
    column = len(b"DKIM-Signature:")
    for token in tokens:
        if column + 1 + len(token) > _WIDTH:
            out += b"\r\n"
            column = 0
        out += b" " + token
        column += 1 + len(token)
    return bytes(out)


def _fold_b64(value: bytes, signature: bytes) -> bytes:
    """Append the b= value, filling the current line, then lines of 76 characters."""
    column = len(value) - value.rfind(b"\n") - 1 if b"\n" in value else (
        len(value) + len(b"DKIM-Signature:"))
    room = max(_WIDTH - column, 0)
    pieces = [signature[:room]] if room else [b""]
    pieces += [signature[i:i + 76] for i in range(room, len(signature), 76)]
    return value + pieces[0] + b"".join(b"\r\n " + p for p in pieces[1:])


def _settings_key(path: Path, selector: str, infix: str, backend: str) -> SigningKey:
    name = f"CITYMAIL_DKIM_{infix}KEY"
    if not selector:
        raise SettingsError(f"{name} is set, so CITYMAIL_DKIM_{infix}SELECTOR must name the "
                            "selector its public key is published under")
    check_dns_name(selector, f"CITYMAIL_DKIM_{infix}SELECTOR")
    try:
        return load_key(path, selector, backend=backend)
    except SettingsError as exc:
        raise SettingsError(f"{name} {exc}") from None
