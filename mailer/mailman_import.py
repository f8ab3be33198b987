"""Moving a list's members from Mailman 2 or 3 (``citymail members import-mailman``).

The file is what each Mailman's own command prints, one member per line
(``Full Name <address>`` or ``address``), in sections that say what the members below
receive. Make it on the old server with::

    # Mailman 2.1                                # Mailman 3
    echo '[regular]'                             echo '[regular]'
    bin/list_members -f -r LIST                  mailman members --regular LIST
    echo '[digest]'                              echo '[digest]'
    bin/list_members -f -d LIST                  mailman members --digest any LIST
    echo '[nomail]'                              echo '[nomail]'
    bin/list_members -f -n byadmin LIST          mailman members --nomail byadmin LIST
    bin/list_members -f -n bybounce LIST         mailman members --nomail bybounces LIST
    echo '[left]'                                echo '[left]'
    bin/list_members -f -n byuser LIST           mailman members --nomail byuser LIST

(each block redirected into one file, e.g. ``{ …; } > LIST.members``). A file without
sections is read as ``[regular]``. ``[byadmin]``, ``[bybounce]`` and ``[unknown]`` mean
``[nomail]``; ``[byuser]`` and ``[unsubscribed]`` mean ``[left]``. Lines starting with
``#`` are comments. Because ``-r`` also prints members whose delivery is off, an address
in several sections takes the strongest: left, then nomail, then digest, then regular.

What it becomes: ``[regular]`` and ``[digest]`` an active subscription in that mode,
``[nomail]`` an active ``nomail`` one, ``[left]`` (the person turned delivery off
themselves) a ``left`` subscription: never active, and never re-added for them by a
roster import. A subscription someone already left (or lost to bounces) here is never
re-activated. New people are recorded as non-league members (a roster import makes them
league members) subscribed to this list only, with a welcome unless ``welcome`` is
False. Like ``citymail members import``: addresses are validated, a file with bad lines
imports nothing, a dry run shows exactly what would change, and the import is written in
one transaction after checking that nothing changed since it was planned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import parseaddr

from sqlalchemy import Connection, Engine, select, text, update

from mailer.bulk import bulk_insert
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import MailingList, Member, Subscription
from mailer.privacy import address_digests
from mailer.roster import StalePlan
from mailer.rostercsv import RowError, decode
from mailer.rosterplan import Snapshot, fingerprint, read_snapshot
from mailer.settings import Settings
from mailer.welcome import WelcomeWriter, queue_welcomes

__all__ = ["MailmanEntry", "MailmanFile", "MailmanPlan", "import_mailman", "plan_mailman",
           "read_mailman", "valid_list_id"]

SOURCE = "mailman"
STRENGTH = {"regular": 0, "digest": 1, "digest-plain": 1, "nomail": 2, "left": 3}
SECTIONS = {"regular": "regular", "enabled": "regular", "digest": "digest", "mime": "digest",
            "plain": "digest-plain", "plaintext": "digest-plain", "any": "digest",
            "nomail": "nomail",
            "byadmin": "nomail", "bybounce": "nomail", "bybounces": "nomail",
            "unknown": "nomail", "left": "left", "byuser": "left", "unsubscribed": "left"}
_SECTION = re.compile(r"\[\s*([A-Za-z-]+)\s*\]")
_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")


@dataclass(frozen=True)
class MailmanEntry:
    line: int
    email: str
    name: str
    state: str  # regular | digest | nomail | left


@dataclass(frozen=True)
class MailmanFile:
    entries: tuple[MailmanEntry, ...]
    errors: tuple[RowError, ...]
    lines: int  # member lines read


def valid_list_id(value: str) -> str:
    """An RFC 2919 list-id (angle brackets optional), else InvalidInput."""
    cleaned = value.strip().strip("<>").strip()
    if not _LIST_ID.fullmatch(cleaned) or len(cleaned) > 255:
        raise InvalidInput(f"a List-Id is a dot-atom such as 'clerks.lists.example.org' "
                           f"(RFC 2919), got {value!r}")
    return cleaned


def _name(text: str) -> str:
    try:
        return " ".join(str(make_header(decode_header(text))).split())
    except Exception:  # a broken encoded word: keep it as written
        return " ".join(text.split())


def read_mailman(data: bytes, *, normalise: Callable[[str], str]) -> MailmanFile:
    """Read a members file (see the module docstring); bad lines are reported, not fatal."""
    text, _ = decode(data)
    state = "regular"
    found: dict[str, MailmanEntry] = {}
    errors: list[RowError] = []
    lines = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        section = _SECTION.fullmatch(line)
        if section:
            word = section.group(1).lower()
            if word not in SECTIONS:
                raise InvalidInput(f"line {number}: unknown section [{word}]; sections are "
                                   "[regular], [digest], [nomail] and [left]")
            state = SECTIONS[word]
            continue
        lines += 1
        name, address = parseaddr(line)
        try:
            email = normalise(address or line)
        except InvalidInput as exc:
            errors.append(RowError(number, "address", str(exc)))
            continue
        entry = MailmanEntry(number, email, _name(name), state)
        earlier = found.get(email)
        if earlier is None or STRENGTH[state] > STRENGTH[earlier.state]:
            found[email] = MailmanEntry(number, email, entry.name or (
                earlier.name if earlier else ""), state)
    return MailmanFile(tuple(found.values()), tuple(errors), lines)


@dataclass(frozen=True)
class MailmanPlan:
    list_name: str
    list_id: int
    file: MailmanFile
    new_people: tuple[MailmanEntry, ...]  # new members, with their subscription
    subscribe: tuple[tuple[int, MailmanEntry], ...]  # known member, no subscription yet
    modes: tuple[tuple[int, MailmanEntry], ...]  # active here: the mode changes
    leave: tuple[tuple[int, MailmanEntry], ...]  # active here, left on the old server
    kept_out: tuple[MailmanEntry, ...]  # left or removed here: not re-activated
    suppressed: tuple[MailmanEntry, ...]  # asked to be forgotten
    unchanged: int
    fingerprint: tuple[object, ...]
    next_member_id: int

    def to_json(self) -> dict[str, object]:
        def people(items: tuple[MailmanEntry, ...]) -> list[dict[str, str]]:
            return [{"email": e.email, "name": e.name, "state": e.state} for e in items]

        return {
            "list": self.list_name, "lines": self.file.lines,
            "errors": [{"line": e.row, "why": e.why} for e in self.file.errors],
            "add": people(self.new_people),
            "subscribe": people(tuple(e for _, e in self.subscribe)),
            "mode": people(tuple(e for _, e in self.modes)),
            "leave": people(tuple(e for _, e in self.leave)),
            "kept_out": people(self.kept_out), "suppressed": people(self.suppressed),
            "unchanged": self.unchanged,
        }


def plan_mailman(mm: MailmanFile, snap: Snapshot, settings: Settings, list_name: str, *,
                 modes: Mapping[int, str]) -> MailmanPlan:
    """Decide every change; reads nothing but its arguments (``modes``: member id -> the
    mode of their subscription to this list)."""
    ref = snap.lists.get(list_name)
    if ref is None or ref.kind != "list":
        raise NotFound(f"no list named {list_name!r} (see: citymail lists show)")
    new, subscribe, changes, leave, kept, suppressed = [], [], [], [], [], []
    unchanged = 0
    for e in mm.entries:
        if snap.suppressed.intersection(address_digests(settings, e.email)):
            suppressed.append(e)
            continue
        known = snap.members.get(e.email)
        if known is None:
            new.append(e)
            continue
        current = snap.subscriptions.get(known.id, {})
        status = current.get(ref.id)
        mode = "regular" if e.state == "left" else e.state
        if status is None:
            subscribe.append((known.id, e))
        elif status != "active":
            if e.state == "left":
                unchanged += 1
            else:
                kept.append(e)
        elif e.state == "left":
            leave.append((known.id, e))
        elif mode != modes.get(known.id):
            changes.append((known.id, e))
        else:
            unchanged += 1
    return MailmanPlan(list_name, ref.id, mm, tuple(new), tuple(subscribe), tuple(changes),
                       tuple(leave), tuple(kept), tuple(suppressed), unchanged,
                       snap.fingerprint, snap.next_member_id)


@dataclass(frozen=True)
class MailmanResult:
    plan: MailmanPlan
    applied: bool
    welcomes: int = 0


def _read_modes(conn: Connection, list_name: str) -> dict[int, str]:
    """Member id -> mode on the list (the roster snapshot keeps statuses only)."""
    return {m: mode for m, mode in conn.execute(
        select(Subscription.member_id, Subscription.mode)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(MailingList.name == list_name))}


def _apply(engine: Engine, settings: Settings, plan: MailmanPlan, snap: Snapshot, *,
           welcome: bool, list_id_value: str | None) -> int:
    now = utcnow()
    ref = snap.lists[plan.list_name]
    writer = WelcomeWriter(settings)
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":  # as a roster import: no writer slips in
            conn.execute(text("LOCK TABLE members, subscriptions, cities, member_caucuses, "
                              "suppressions IN SHARE ROW EXCLUSIVE MODE"))
        if fingerprint(conn) != plan.fingerprint:
            raise StalePlan("the members changed while the import was being planned")
        ids = list(range(plan.next_member_id, plan.next_member_id + len(plan.new_people)))
        bulk_insert(conn, Member, [
            {"id": i, "email": e.email, "name": e.name, "title": None, "role": None,
             "city_id": None, "is_league_member": False, "status": "active",
             "created_at": now, "updated_at": now}
            for i, e in zip(ids, plan.new_people, strict=True)])
        if plan.new_people and conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('members', 'id'), "
                              "(SELECT max(id) FROM members))"))
        people = [*zip(ids, plan.new_people, strict=True), *plan.subscribe]
        bulk_insert(conn, Subscription, [
            {"member_id": m, "list_id": plan.list_id,
             "mode": "regular" if e.state == "left" else e.state,
             "status": "left" if e.state == "left" else "active", "source": SOURCE,
             "created_at": now, "updated_at": now} for m, e in people])
        for member_id, e in plan.modes:
            conn.execute(update(Subscription).where(
                Subscription.member_id == member_id, Subscription.list_id == plan.list_id)
                .values(mode=e.state, updated_at=now))
        for member_id, _ in plan.leave:
            conn.execute(update(Subscription).where(
                Subscription.member_id == member_id, Subscription.list_id == plan.list_id)
                .values(status="left", updated_at=now))
        if list_id_value is not None:
            conn.execute(update(MailingList).where(MailingList.id == plan.list_id)
                         .values(list_id=list_id_value))
        welcomes = [writer.message(member_id=m, email=e.email, name=e.name, lists=[ref])
                    for m, e in zip(ids, plan.new_people, strict=True)
                    if welcome and e.state != "left"]
        queue_welcomes(conn, welcomes)
    return len(welcomes)


def import_mailman(engine: Engine, settings: Settings, list_name: str, data: bytes, *,
                   dry_run: bool = False, welcome: bool = True, list_id: str | None = None,
                   attempts: int = 3) -> MailmanResult:
    """Plan and (unless ``dry_run`` or the file has bad lines) apply a Mailman import."""
    from mailer.people import normalise_email

    list_id_value = valid_list_id(list_id) if list_id is not None else None
    mm = read_mailman(data, normalise=normalise_email)
    for _ in range(attempts):
        with reading(engine) as conn:
            snap = read_snapshot(conn)
            modes = _read_modes(conn, list_name)
        plan = plan_mailman(mm, snap, settings, list_name, modes=modes)
        if dry_run or mm.errors:
            return MailmanResult(plan, False)
        try:
            count = _apply(engine, settings, plan, snap, welcome=welcome,
                           list_id_value=list_id_value)
        except StalePlan:
            continue
        return MailmanResult(plan, True, count)
    raise StalePlan(f"the members kept changing during the import ({attempts} attempts); "
                    "nothing was imported; try again")
