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
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dkim
from dkim.canonicalization import Relaxed

from mailer.dkim_keys import (
    ED25519_PKCS8_PREFIX,
    SigningError,
    SigningKey,
    check_dns_name,
    ed25519_key,
    load_key,
    rsa_key,
    settings_key,
)
from mailer.errors import SettingsError

__all__ = [  # the key helpers are re-exported: callers need one import
    "ED25519_PKCS8_PREFIX",
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

_WIDTH = 78


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
        keys = [settings_key(settings.dkim_key, settings.dkim_selector, "", backend)]
        if keys[0].algorithm != "rsa-sha256":
            raise SettingsError("CITYMAIL_DKIM_KEY must be an RSA key (every receiver checks "
                                "RSA); put the Ed25519 key in CITYMAIL_DKIM_ED25519_KEY")
        if settings.dkim_ed25519_key is not None:
            keys.append(settings_key(settings.dkim_ed25519_key,
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
