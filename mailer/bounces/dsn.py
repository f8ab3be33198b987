"""RFC 3464 delivery status notifications: per-recipient fields to failures.

Reads ``message/delivery-status`` parts (also when mis-encoded or served as plain text) and
DSN field blocks pasted into a plain-text notice, as Amazon WorkMail and others do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from mailer.bounces import addresses, classify, mime
from mailer.bounces.report import Failure

STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_RECIPIENT_FIELDS = ("original-recipient", "final-recipient", "x-actual-recipient")
MAX_DIAGNOSTIC = 1000  # characters of a Diagnostic-Code kept


@dataclass(frozen=True, slots=True)
class RecipientFields:
    """The per-recipient block of a DSN, reduced to the fields bounce handling uses."""

    address: str
    action: str
    status: str | None
    diagnostic: str


def delivery_status_parts(msg: Message) -> list[Message]:
    """The message/delivery-status parts of ``msg`` (outside any returned message)."""
    closed = mime.ORIGINAL_TYPES | STATUS_TYPES
    return [p for p in mime.parts(msg, closed=closed) if p.get_content_type() in STATUS_TYPES]


def parse_fields(text: str) -> list[dict[str, str]]:
    """Split DSN-style text into blocks of ``{lower-case name: unfolded value}``."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            current[last] = f"{current[last]} {line.strip()}"
            continue
        match = _FIELD.match(line)
        if match is None:
            last = None
            continue
        name = match.group(1).lower()
        last = name
        current.setdefault(name, match.group(2).strip())
    if current:
        blocks.append(current)
    return blocks


def part_blocks(part: Message) -> list[dict[str, str]]:
    """Field blocks of one delivery-status part, however the parser left it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        messages = [p for p in payload if isinstance(p, Message)]
        blocks = []
        for block in messages:
            fields: dict[str, str] = {}
            for name, value in block.items():
                fields.setdefault(name.lower(), re.sub(r"\s+", " ", str(value)).strip())
            blocks.append(fields)
        if any(any(k in b for k in _RECIPIENT_FIELDS) for b in blocks):
            return blocks
        # A malformed line ends a block's fields early and leaves the rest as its "body";
        # read the whole block again as text.
        return [b for block in messages for b in parse_fields(_block_text(block))]
    return parse_fields(mime.part_text(part))


def recipient_fields(blocks: list[dict[str, str]]) -> list[RecipientFields]:
    """Per-recipient blocks with a usable address (Original- before Final-Recipient)."""
    found: list[RecipientFields] = []
    for block in blocks:
        address = _block_address(block)
        if address is None:
            continue
        diagnostic = _strip_type(block.get("diagnostic-code", ""))[:MAX_DIAGNOSTIC]
        found.append(
            RecipientFields(
                address=address,
                action=block.get("action", "").strip().lower(),
                status=classify.status_field(block.get("status", "")),
                diagnostic=diagnostic,
            )
        )
    return found


def to_failure(fields: RecipientFields) -> Failure | None:
    """Turn one recipient block into a failure; None for delivered/relayed/expanded."""
    action = fields.action.split()[0].strip(";()") if fields.action else ""
    status = classify.refine_status(fields.status, fields.diagnostic)
    if action in {"delivered", "relayed", "expanded"}:
        return None
    if not action and status and status.startswith("2"):
        return None
    permanent: bool | None
    if action.startswith("delay"):
        permanent = False
    elif status and status[0] in "45":
        permanent = status[0] == "5"
    else:
        permanent = classify.permanence_from_codes(fields.diagnostic)
        if permanent is None:
            permanent = True
    return Failure(
        address=fields.address,
        permanent=permanent,
        status=status if status and status[0] in "45" else None,
        diagnostic=fields.diagnostic or None,
        policy=classify.is_policy(status, fields.diagnostic),
    )


def parse_dsn(msg: Message) -> tuple[bool, list[Failure], int]:
    """Read every delivery-status part of ``msg``.

    Returns (has a delivery-status part, failures, number of successful deliveries reported).
    """
    parts = delivery_status_parts(msg)
    failures: list[Failure] = []
    delivered = 0
    for part in parts:
        for fields in recipient_fields(part_blocks(part)):
            failure = to_failure(fields)
            if failure is None:
                delivered += 1
            else:
                failures.append(failure)
    return bool(parts), failures, delivered


def parse_embedded(text: str) -> list[Failure]:
    """DSN recipient blocks pasted into a plain-text notice."""
    if not re.search(r"^(?:final|original)-recipient\s*:", text, re.IGNORECASE | re.MULTILINE):
        return []
    failures = []
    for fields in recipient_fields(parse_fields(text)):
        failure = to_failure(fields)
        if failure is not None:
            failures.append(failure)
    return failures


def _block_text(block: Message) -> str:
    fields = "\n".join(f"{name}: {value}" for name, value in block.items())
    body = block.get_payload()
    return f"{fields}\n{body}" if isinstance(body, str) else fields


def _block_address(block: dict[str, str]) -> str | None:
    for name in _RECIPIENT_FIELDS:
        value = block.get(name)
        if not value:
            continue
        kind, sep, rest = value.partition(";")
        if sep and kind.strip().lower() not in {"rfc822", "utf-8", "smtp", "x400"}:
            continue  # an address type we cannot use
        address = addresses.clean(rest if sep else value)
        if address is not None:
            return address
    return None


def _strip_type(diagnostic: str) -> str:
    match = re.match(r"\s*[\w-]{1,20}\s*;(.*)", diagnostic, re.DOTALL)
    return (match.group(1) if match else diagnostic).strip()
