"""VERP envelope senders: ``LIST-bounces+TOKEN@domain``, signed so forged bounces are ignored.

The token names the delivery (which names the member, the list and the message); it is
short enough for the 64-octet local-part limit and uses only lower-case letters, digits and
``-`` because some MTAs fold the case of local parts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from mailer.tokens import base36

__all__ = ["verp_decode", "verp_sender"]


def _mac(key: bytes, delivery_id: int) -> str:
    digest = hmac.new(key, f"verp\0{delivery_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:5]).decode().lower()  # 8 characters, 40 bits


def verp_token(key: bytes, delivery_id: int) -> str:
    return f"{base36(delivery_id)}-{_mac(key, delivery_id)}"


def verp_sender(bounce_local: str, domain: str, key: bytes, delivery_id: int) -> str:
    return f"{bounce_local}+{verp_token(key, delivery_id)}@{domain}"


def verp_decode(keys: Sequence[bytes], token: str) -> int | None:
    """The delivery id a genuine token names, or None for a forged or garbled one."""
    ident, dash, mac = token.lower().rpartition("-")
    if not dash or not ident:
        return None
    try:
        delivery_id = int(ident, 36)
    except ValueError:
        return None
    if any(hmac.compare_digest(mac, _mac(k, delivery_id)) for k in keys):
        return delivery_id
    return None
