"""Signed tokens for links and addresses: unforgeable, bound to their purpose and subject.

A token is ``PAYLOAD.SIGNATURE`` in URL- and address-safe base32/base64url.  The HMAC
covers the purpose too, so an unsubscribe token cannot serve as a moderation approval.
Several keys may verify (rotation, newest first); only the first signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

__all__ = ["base36", "sign", "unsign"]


def base36(n: int) -> str:
    """A non-negative integer in lower-case base 36: short, and safe in local parts that
    MTAs case-fold (``int(text, 36)`` reads it back)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, payload: str, size: int) -> str:
    digest = hmac.new(key, f"{purpose}\0{payload}".encode(), hashlib.sha256).digest()
    return _b64(digest[:size])


def sign(key: bytes, purpose: str, *fields: str | int, expires: int | None = None,
         size: int = 12) -> str:
    """Sign ``fields`` for ``purpose``; ``expires`` is a Unix time after which it fails."""
    parts = [str(f) for f in fields]
    if expires is not None:
        parts.append(f"e{expires}")
    payload = _b64("\x1f".join(parts).encode())
    return f"{payload}.{_mac(key, purpose, payload, size)}"


def unsign(keys: Sequence[bytes], purpose: str, token: str, *, size: int = 12,
           now: float | None = None) -> list[str] | None:
    """The fields of a valid, unexpired token for ``purpose``, else None."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac:
        return None
    if not any(hmac.compare_digest(mac, _mac(k, purpose, payload, size)) for k in keys):
        return None
    try:
        fields = _unb64(payload).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError):
        return None
    if fields and fields[-1].startswith("e") and fields[-1][1:].isdigit():
        if int(fields[-1][1:]) < (time.time() if now is None else now):
            return None
        fields = fields[:-1]
    return fields
