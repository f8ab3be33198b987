"""Confirmation tokens that survive an email address: ``LIST-confirm+TOKEN@domain``.

A token is ``K<id>-<expiry>-<mac>``, all lower-case letters and digits (mail systems fold
the case of local parts, and the gateway lower-cases them)::

    m1c-t9x2pc-k3jq6hx5r2mzu      K   what it is about            id names
                                  m   a held message              the inbound message
                                  r   a person's own request      the inbound message
                                  a   an owner's approval         the list_requests row

``<id>`` and ``<expiry>`` (a Unix time) are base 36; ``<mac>`` is the HMAC of
:func:`mailer.tokens.sign` (purpose ``K:LIST``, so a token for one list or one kind is
worthless for another; 64 bits) written in base 32.  The key rotation and the expiry check
are :mod:`mailer.tokens`' own.  A token only says *who may act on what*: whether it can
still be used (single use) is the state of the row it names, checked in the transaction
that acts.  With the longest list name here (30 characters), ``-confirm+`` and a token
come to about 64 octets, RFC 5321's local-part limit (which MTAs do not enforce).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailer.tokens import base36, sign, unsign

__all__ = ["KINDS", "TOKEN_PATTERN", "Token", "confirm_address", "make_token", "read_token"]

KINDS = frozenset("mra")
MAC_BYTES = 8
TOKEN_PATTERN = re.compile(r"\b([mra][0-9a-z]{1,12}-[0-9a-z]{1,8}-[a-z2-7]{13})\b", re.IGNORECASE)
_SHAPE = re.compile(r"([mra])([0-9a-z]{1,12})-([0-9a-z]{1,8})-([a-z2-7]{13})")


@dataclass(frozen=True)
class Token:
    """What a genuine, unexpired token names."""

    kind: str  # m | r | a
    ident: int
    expires: int


def _purpose(kind: str, list_name: str) -> str:
    return f"{kind}:{list_name.lower()}"


def make_token(key: bytes, kind: str, list_name: str, ident: int, *, expires: int) -> str:
    """A token for ``kind`` about row ``ident`` of ``list_name``, valid until ``expires``."""
    if kind not in KINDS:
        raise ValueError(f"token kind must be one of {sorted(KINDS)}, got {kind!r}")
    signed = sign(key, _purpose(kind, list_name), ident, expires=expires, size=MAC_BYTES)
    mac = base64.urlsafe_b64decode(signed.partition(".")[2] + "==")
    folded = base64.b32encode(mac).decode().rstrip("=").lower()
    return f"{kind}{base36(ident)}-{base36(expires)}-{folded}"


def read_token(keys: Sequence[bytes], list_name: str, token: str | None, *,
               now: float | None = None) -> Token | None:
    """The token's meaning when it is genuine and unexpired for ``list_name``, else None."""
    match = _SHAPE.fullmatch((token or "").strip().lower())
    if match is None:
        return None
    kind, ident_text, expires_text, folded = match.groups()
    ident, expires = int(ident_text, 36), int(expires_text, 36)
    try:
        mac = base64.b32decode(folded.upper() + "===")
    except (binascii.Error, ValueError):
        return None
    purpose = _purpose(kind, list_name)
    # The payload does not depend on the key: rebuild it, then let mailer.tokens verify.
    payload = sign(b"", purpose, ident, expires=expires, size=MAC_BYTES).partition(".")[0]
    mac_text = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    fields = unsign(keys, purpose, f"{payload}.{mac_text}", size=MAC_BYTES,
                    now=time.time() if now is None else now)
    if fields != [str(ident)]:
        return None
    return Token(kind, ident, expires)


def confirm_address(list_name: str, domain: str, token: str) -> str:
    return f"{list_name}-confirm+{token}@{domain}"
