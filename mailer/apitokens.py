"""API clients: per-client bearer tokens with scopes.

A token is ``cm_`` and 32 random bytes (URL-safe base64), shown once when it is created;
only its SHA-256 is stored, so looking one up is a unique-index hit and a stolen copy of
the database grants nothing.  A revoked client keeps its row (and name) for the record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mailer.db import utcnow
from mailer.errors import InvalidInput, NotFound
from mailer.models_api import ApiClient

__all__ = [
    "SCOPES", "Client", "authenticate", "create_client", "hash_token", "list_clients",
    "revoke_client", "touch",
]

# What each scope allows; every /api/v1 route names the one it needs.
SCOPES: dict[str, str] = {
    "lists:read": "read lists and newsletters",
    "members:read": "read members and their subscriptions",
    "members:write": "add members; subscribe and unsubscribe them",
    "held:read": "read messages held for moderation",
    "held:write": "approve, reject or discard held messages",
    "issues:read": "read newsletter issues and their progress",
    "issues:write": "create, schedule, cancel, pause and resume issues",
    "deliveries:read": "read delivery progress",
    "subscribers:write": "start a newsletter sign-up (the person confirms by email)",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PREFIX = "cm_"
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often

C = ApiClient.__table__


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    scopes: frozenset[str]
    last_used_at: dt.datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise InvalidInput(f"scopes are one or more of {', '.join(SCOPES)}; "
                           f"got {', '.join(unknown) or 'none'}")
    return chosen


def create_client(conn: Connection, name: str, scopes: Iterable[str]) -> str:
    """A new client; returns its token (the only time it can be seen)."""
    if not NAME.match(name):
        raise InvalidInput(f"a client name is letters, digits, '.', '_' or '-' (up to 100), "
                           f"got {name!r}")
    chosen = check_scopes(scopes)
    if conn.execute(select(C.c.id).where(C.c.name == name)).first() is not None:
        raise InvalidInput(f"there is already a client called {name!r} (revoke it, or choose "
                           "another name)")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(insert(C).values(name=name, token_hash=hash_token(token), scopes=chosen,
                                  created_at=utcnow()))
    return token


def authenticate(conn: Connection, token: str) -> Client | None:
    """The active client holding ``token``, else None (unknown or revoked)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = conn.execute(select(C.c.id, C.c.name, C.c.scopes, C.c.last_used_at)
                       .where(C.c.token_hash == hash_token(token),
                              C.c.revoked_at.is_(None))).first()
    return Client(row.id, row.name, frozenset(row.scopes), row.last_used_at) if row else None


def touch(conn: Connection, client: Client, *, now: dt.datetime | None = None) -> bool:
    """Record that ``client`` was used (at most once a minute: it costs a write)."""
    now = now or utcnow()
    if client.last_used_at is not None and now - client.last_used_at < TOUCH_EVERY:
        return False
    conn.execute(update(C).where(C.c.id == client.id).values(last_used_at=now))
    return True


def list_clients(conn: Connection) -> list[dict[str, Any]]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return [{"name": r.name, "scopes": list(r.scopes), "created": iso(r.created_at),
             "last_used": iso(r.last_used_at), "revoked": iso(r.revoked_at)}
            for r in conn.execute(select(C).order_by(C.c.name))]


def revoke_client(conn: Connection, name: str) -> bool:
    """Revoke ``name``'s token at once; False if it was already revoked."""
    if conn.execute(select(C.c.id).where(C.c.name == name)).first() is None:
        raise NotFound(f"no API client called {name!r} (see: citymail api token list)")
    return bool(conn.execute(update(C).where(C.c.name == name, C.c.revoked_at.is_(None))
                             .values(revoked_at=utcnow())).rowcount)
