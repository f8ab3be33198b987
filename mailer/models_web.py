"""Tables of the web side: staff accounts (``web_users``), the lists they moderate, and the
member sign-in links already used (``used_signin_links``).

Members never get a password: they sign in by an emailed link, good once.  Staff (admins,
editors, moderators) sign in with a password hashed by argon2 (``web.users``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import UTCDateTime, utcnow
from mailer.models import Base, BigId

__all__ = ["UsedSigninLink", "WebUser", "WebUserList"]


class WebUser(Base):
    """A person who signs in to the admin, editor or moderator pages."""

    __tablename__ = "web_users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_editor: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column()
    # When ``citymail admin disable`` last ended the sessions; part of their stamp, so that
    # enabling the account again does not bring the old sessions back.
    sessions_ended_at: Mapped[dt.datetime | None] = mapped_column()


class WebUserList(Base):
    """A list a staff user may act on; ``role`` is "moderator" today."""

    __tablename__ = "web_user_lists"
    __table_args__ = (UniqueConstraint("user_id", "list_id", "role"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default="moderator")


class UsedSigninLink(Base):
    """A member sign-in link that has signed someone in, kept until it would have expired.

    The primary key is what makes a link single-use: of two POSTs of one link, only the
    first INSERT succeeds (``web.login.claim_link``).
    """

    __tablename__ = "used_signin_links"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
