"""Staff accounts: create, change password, disable, list, and check a password (argon2id).

A failed sign-in costs the same whether or not the address has an account: an unknown
address is checked against a dummy hash.  ``stamp`` is a fingerprint of the password
hash (and of when the account was last disabled) that sessions carry, so a new password
or disabling the account ends them all, for good.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, Row, insert, select, update

from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import ListRole, MailingList
from mailer.models_web import WebUser, WebUserList
from mailer.people import normalise_email

__all__ = ["MIN_PASSWORD", "StaffUser", "authenticate", "check_password", "create_user",
           "list_users", "load_user", "moderated_lists", "set_disabled", "set_password", "stamp"]

MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a cap keeps a sign-in cheap to refuse
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when there is no such account, so a refusal takes as long either way.
    Made on first use: an argon2 hash takes 64 MiB and ~50 ms, which every process
    importing this module (the CLI, the workers) would otherwise pay."""
    return _hasher.hash("citymail: no such user")


@dataclass(frozen=True)
class StaffUser:
    id: int
    email: str
    is_admin: bool
    is_editor: bool
    disabled: bool
    moderates: frozenset[str]
    stamp: str
    last_login: str | None = None


def stamp(password_hash: str, sessions_ended_at: dt.datetime | None = None) -> str:
    """A short fingerprint of a password hash (changes with every new password) and of
    when the sessions were last ended (None for accounts never disabled: the same stamp
    as before there was such a time, so no session ends on upgrading)."""
    text = password_hash if sessions_ended_at is None else (
        f"{password_hash}\0{sessions_ended_at.isoformat()}")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password may have at most {MAX_PASSWORD} characters")
    return password


def moderated_lists(conn: Connection, user_id: int, email: str) -> frozenset[str]:
    """Lists this user moderates: granted to the account, or named as moderator or owner."""
    granted = select(MailingList.name).join(WebUserList, WebUserList.list_id == MailingList.id
                                            ).where(WebUserList.user_id == user_id,
                                                    WebUserList.role == "moderator")
    named = select(MailingList.name).join(ListRole, ListRole.list_id == MailingList.id).where(
        ListRole.email == email, ListRole.role.in_(("moderator", "owner")))
    return frozenset(conn.execute(granted.union(named)).scalars())


_USERS = select(WebUser.__table__)


def _user(conn: Connection, row: Row) -> StaffUser:
    return StaffUser(row.id, row.email, row.is_admin, row.is_editor, row.disabled,
                     moderated_lists(conn, row.id, row.email),
                     stamp(row.password_hash, row.sessions_ended_at),
                     row.last_login_at.isoformat() if row.last_login_at else None)


def load_user(conn: Connection, user_id: int) -> StaffUser | None:
    row = conn.execute(_USERS.where(WebUser.id == user_id)).first()
    return _user(conn, row) if row else None




def list_users(conn: Connection) -> list[StaffUser]:
    return [_user(conn, r) for r in conn.execute(_USERS.order_by(WebUser.email))]


def _list_ids(conn: Connection, names: Iterable[str]) -> list[int]:
    ids = []
    for name in names:
        found = conn.execute(select(MailingList.id).where(MailingList.name == name)).scalar()
        if found is None:
            raise NotFound(f"no list called {name!r} (see: citymail lists show)")
        ids.append(found)
    return ids


def create_user(conn: Connection, email: str, password: str, *, is_admin: bool = False,
                is_editor: bool = False, moderates: Iterable[str] = ()) -> int:
    """A new staff account; InvalidInput if the address already has one."""
    address = normalise_email(email)
    check_password(password)
    if conn.execute(select(WebUser.id).where(WebUser.email == address)).scalar() is not None:
        raise InvalidInput(f"{address} already has an account; change its password with: "
                           f"citymail admin passwd {address}")
    list_ids = _list_ids(conn, moderates)
    user_id = conn.execute(insert(WebUser).values(
        email=address, password_hash=_hasher.hash(password), is_admin=is_admin,
        is_editor=is_editor, disabled=False, created_at=utcnow()).returning(WebUser.id)
    ).scalar_one()
    for list_id in list_ids:
        conn.execute(insert(WebUserList).values(user_id=user_id, list_id=list_id,
                                                role="moderator"))
    return user_id


def set_password(conn: Connection, email: str, password: str) -> None:
    check_password(password)
    done = conn.execute(update(WebUser).where(WebUser.email == email.strip().lower())
                        .values(password_hash=_hasher.hash(password))).rowcount
    if not done:
        raise NotFound(f"no account for {email} (see: citymail admin users)")


def set_disabled(conn: Connection, email: str, disabled: bool) -> bool:
    """Disable or enable an account; False if it was so already.  A disabled account
    cannot sign in, and its sessions end at their next request (``web.auth`` re-reads it);
    disabling also changes the stamp, so enabling it later does not revive them.
    """
    address = email.strip().lower()
    was = conn.execute(select(WebUser.disabled).where(WebUser.email == address)).first()
    if was is None:
        raise NotFound(f"no account for {email} (see: citymail admin users)")
    values: dict[str, object] = {"disabled": disabled}
    if disabled:
        values["sessions_ended_at"] = utcnow()
    conn.execute(update(WebUser).where(WebUser.email == address).values(**values))
    return bool(was.disabled) != disabled



def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(engine: Engine, email: str, password: str) -> StaffUser | None:
    """The enabled account whose password this is, else None (equally slow either way)."""
    address = email.strip().lower()
    if len(password) > MAX_PASSWORD:  # no account has one; still hash, so time tells nothing
        _verify(_dummy_hash(), password[:MAX_PASSWORD])
        return None
    with reading(engine) as conn:
        row = conn.execute(_USERS.where(WebUser.email == address)).first()
    if row is None:
        _verify(_dummy_hash(), password)
        return None
    if not _verify(row.password_hash, password) or row.disabled:
        return None
    with writing(engine) as conn:
        values: dict[str, object] = {"last_login_at": utcnow()}
        if _hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = _hasher.hash(password)
        conn.execute(update(WebUser).where(WebUser.id == row.id).values(**values))
        return load_user(conn, row.id)
