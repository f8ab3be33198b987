"""Non-standard bounces: is this a delivery failure, and for which recipients?

Two inputs are combined: flufl.bounce's detectors (qmail, Exim, Postfix, Yahoo, GroupWise,
Exchange, SMTP32 and many "simple" formats) and the line patterns below, which cover
notices flufl.bounce does not know.  Only the notice text is searched, never the returned
message, so addresses and codes quoted from the original cannot leak in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from email.message import Message
from email.utils import getaddresses

from mailer.bounces import addresses, classify, mime
from mailer.bounces.addresses import ADDRESS
from mailer.bounces.report import Failure

log = logging.getLogger(__name__)

A = rf"<?(?P<addr>{ADDRESS})>?"

SENDER_RE = re.compile(
    r"mailer[-_. ]?daemon|post_?master|mail delivery|delivery (?:status|subsystem|system)"
    r"|mail ?administrator|system administrator|ndr administrator|mail ?deliver|\bmdaemon\b"
    r"|ma?il[-_ ]?(?:system|server|gateway)\b|\bmmsc\b|microsoftexchange[0-9a-f]{32}",
    re.IGNORECASE,
)
SUBJECT_RE = re.compile(
    r"undeliver|undelivered|returned mail|mail returned|returned to sender|delivery status"
    r"|delivery (?:failure|failed|problem|notification|report)|failure notice|failed delivery"
    r"|mail delivery|could not be delivered|not delivered|non[- ]?deliver|\bndr\b|\bdsn\b"
    r"|mail system error|error sending|there was an error|message (?:not )?delayed"
    r"|warning: (?:message|could not)|delayed mail|mail error|rejected|bounce"
    r"|email delivery failure|not (?:a )?member|failed mail|mail failed"
    r"|unzustellbar|nicht zugestellt|non recapitabile|non remis"
    r"|no entregado|onbestelbaar|niedostarczon|nedoručen|配信|送信でき|エラー|未送達|不能",
    re.IGNORECASE,
)
BODY_RE = re.compile(
    r"could ?n[o']t be delivered|was not delivered|wasn't delivered|undeliverable"
    r"|delivery (?:to the following recipients? )?(?:has )?failed|failed to deliver"
    r"|(?:unable|not able|wasn't able) to deliver|permanent (?:fatal )?error"
    r"|delivery status notification|user unknown|unknown user|no such (?:user|mailbox|recipient)"
    r"|mailbox (?:unavailable|not found|is full|full)|address rejected|does not exist"
    r"|message rejected|following (?:address|recipient)|did not reach|error delivering"
    r"|cannot be delivered|trouble delivering|not be delivered|remote host said"
    r"|rcpt to|has been delayed|not yet been delivered|could not be reached"
    r"|delivery (?:has )?failed|returned mail|rejected by|invalid (?:user|address|recipient)"
    r"|no valid recipients|mailbox (?:exceeded|quota)|quota exceeded|over quota"
    r"|not a member of this (?:mailing )?list",
    re.IGNORECASE,
)

REPLY_PREFIX = re.compile(r"\s*(?:re|fwd?|aw|wg|sv|vs|tr|rv|antw)\s*:", re.IGNORECASE)
# Headers only mail systems put on the failure notices they write.
_MTA_HEADERS = ("X-Failed-Recipients", "X-MS-Exchange-Message-Is-Ndr")

# Line patterns naming a failed recipient, each with group 'addr'.
_ADDRESS_NEAR = r"[\"'\[]?(?:smtp:)?" + A
RECIPIENT_LINES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"^\s*<(?P<addr>{ADDRESS})>:",
        rf"^\s*[\"']?(?P<addr>{ADDRESS})[\"']?:(?:\s+\S|\s*$)",
        rf"rcpt to:\s*{A}",
        rf"(?:could ?n[o']t be delivered|unable to deliver|error delivering|delivery to"
        rf"|not delivered|undeliverable|(?:failed|trouble) delivering)"
        rf"(?: (?:your |the |this )?(?:mail|message|e-?mail))?\s+to:?\s*{_ADDRESS_NEAR}",
        rf"(?:your (?:message|mail|e-?mail) to|addressed to|attempts?:)\s*{_ADDRESS_NEAR}",
        rf"(?:original|final|intended|failed|invalid|undeliverable)[ -]recipient(?: address)?"
        rf":\s*(?:rfc822;\s*)?{_ADDRESS_NEAR}",
        rf"^\s*recipient(?:\(s\))?(?: address)?:\s*{_ADDRESS_NEAR}",
        rf"^\s*(?:address|e-?mail):\s*{A}\s*$",
        rf"undeliverable address:\s*{A}",
        rf"(?:unknown|invalid|bad|non-?existent) (?:user|recipient|address|mailbox)(?:es|s)?"
        rf":\s*{A}",
        rf"(?:permanent|temporary) errors?:\s*{A}",
        rf"error-for:\s*{A}",
        rf"smtp=(?P<addr>{ADDRESS})",
        rf"\(generated from {A}\)",
        rf"(?:local )?mailbox {A} (?:is|does|was|has)\b",
        rf"not a member of (?:this |the )?(?:mailing )?list\s*{A}",
        rf"^\s*(?:\d{{3}}\s+)?{A}\s*\.\.\.\s",
        rf"^\s*(?:>>>\s*)?{A}\s*(?:\[|\(|on\s+(?:\w{{3}},?\s+)?\d|<|invalid|user|mailbox"
        rf"|is\b|-\s)",
    )
)
# A line after which bare addresses, one per line, are the failed recipients.
BLOCK_START = re.compile(
    r"(?:following|these) (?:e-?mail )?(?:address|recipient)|recipients? (?:were|was) affected"
    r"|could not be (?:delivered|reached)|delivery to the following|did not reach"
    r"|failure reasons|failed (?:recipients|addresses)|your message to:?\s*$|to the following"
    r"|undeliverable to|not delivered to:?\s*$|送信に失敗|宛先",
    re.IGNORECASE,
)
BARE_ADDRESS = re.compile(rf"^[\s*>-]{{0,20}}[\"']?{A}[\"']?\s*[.,;:]?\s*$")
# An SMTP reply line: a 4xx/5xx code at its start, possibly after an arrow or a label.
REPLY_LINE = re.compile(r"^\W*(?:<<<\s*|remote host said:\s*)?[45]\d\d[\s-]", re.IGNORECASE)


def from_mail_system(msg: Message) -> bool:
    """True when the message comes from a mail system rather than a person."""
    if any(msg.get(name) is not None for name in _MTA_HEADERS):
        return True
    if msg.get("From") is None:
        return False
    sender = mime.header(msg, "From")
    return bool(SENDER_RE.search(sender)) or sender.strip() in {"", "<>"}


def header_recipients(msg: Message, *, exclude: set[str]) -> list[str]:
    """Recipients listed by an MTA header (Exim's X-Failed-Recipients)."""
    return _usable(addresses.find_all(mime.header(msg, "X-Failed-Recipients")), exclude)


def looks_like_bounce(msg: Message, notice_text: str) -> bool:
    """True when sender, subject and wording together say this is a delivery failure."""
    subject = mime.header(msg, "Subject")
    return_path = mime.header(msg, "Return-Path").strip().lower()
    signs = sum(
        (
            from_mail_system(msg),
            # "Re: Undelivered Mail" is a person talking about a bounce, not a bounce.
            bool(SUBJECT_RE.search(subject)) and not REPLY_PREFIX.match(subject),
            return_path == "<>" or "mailer-daemon" in return_path,
        )
    )
    wording = bool(BODY_RE.search(notice_text))
    return (signs >= 1 and wording) or signs >= 2


def recipients_from_text(notice_text: str, *, exclude: set[str]) -> list[str]:
    """Failed recipients named by the notice's own recipient lines and address blocks."""
    return _usable(_named_recipients(notice_text), exclude, roles=False)


def fallback_recipients(notice_text: str, *, exclude: set[str]) -> list[str]:
    """When nothing names a recipient: addresses in SMTP replies, else the notice's only one."""
    for finder in (_replied_recipients, _sole_address):
        found = _usable(finder(notice_text), exclude)
        if found:
            return found
    return []


def returned_recipients(original: Message | None, *, exclude: set[str]) -> list[str]:
    """Last resort: the one member the returned message was addressed to, if that is clear.

    Only a personal ``To`` counts: not a list address (per List-Post / List-Id), not one of
    several recipients.  Delivered-To and X-Original-To in a returned copy are left alone:
    they often record the post's arrival at the list, not its delivery to the member.
    """
    if original is None or mime.header(original, "Cc"):
        return []
    found = _usable(addresses.find_all(mime.header(original, "To")), exclude)
    if len(found) != 1:
        return []
    lists = set(addresses.find_all(mime.header(original, "List-Post")))
    list_id = mime.header(original, "List-Id").lower()
    if found[0] in lists or f"<{found[0].replace('@', '.')}>" in list_id:
        return []
    return found


def _usable(found: list[str], exclude: set[str], *, roles: bool = True) -> list[str]:
    cleaned = (addresses.clean(a) for a in found)
    return addresses.unique(
        a for a in cleaned if a and a not in exclude and not addresses.is_noise(a, roles=roles)
    )


def _named_recipients(notice_text: str) -> list[str]:
    found: list[str] = []
    # After a BLOCK_START line: None = not in a block, else how many more lines may pass
    # before the first bare address; -1 once collecting (a blank line then ends the block).
    budget: int | None = None
    for line in notice_text.split("\n"):
        if BLOCK_START.search(line):
            budget = 4
            found.extend(_line_matches(line))
            continue
        if budget is not None:
            bare = BARE_ADDRESS.match(line) if "@" in line else None
            if bare:
                found.append(bare.group("addr"))
                budget = -1
                continue
            if budget == -1 or (line.strip() and budget == 0):
                budget = None
            elif line.strip():
                budget -= 1
        found.extend(_line_matches(line))
    return found


def _replied_recipients(notice_text: str) -> list[str]:
    found: list[str] = []
    for line in notice_text.split("\n"):
        if REPLY_LINE.match(line) and not re.search(r"\bsender\b|mail from", line, re.I):
            found.extend(addresses.find_all(line))
    return found


def _sole_address(notice_text: str) -> list[str]:
    lines = [
        line
        for line in notice_text.split("\n")
        if not re.search(r"message-?id|https?:|\bfrom\b|sender|^>\s*[\w-]+:", line, re.I)
    ]
    found = addresses.find_all("\n".join(lines))
    return found if len(found) == 1 else []


def recipients_from_flufl(msg: Message | None, *, exclude: set[str]) -> tuple[list[str], set[str]]:
    """Recipients flufl.bounce's detectors report, and which of them are temporary."""
    if msg is None or not getaddresses([str(msg.get("From", ""))]):
        return [], set()  # flufl.bounce's Yale detector fails (and logs) without a From
    try:
        from flufl.bounce import all_failures  # on first use: only bounces need it

        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on odd input must not stop the parse
        log.debug("flufl.bounce failed on a message", exc_info=True)
        return [], set()
    found: list[str] = []
    temp: set[str] = set()
    for group, is_temp in ((permanent, False), (temporary, True)):
        for raw in sorted(group):
            address = addresses.clean(raw.decode("ascii", "replace"))
            if address and address not in exclude and not addresses.is_noise(address):
                found.append(address)
                if is_temp:
                    temp.add(address)
    return addresses.unique(found), temp


def failures_for(
    recipients: list[str], notice_text: str, *, temporary: Collection[str] = ()
) -> list[Failure]:
    """Judge each recipient from the codes and words around it, then from the whole notice."""
    overall = classify.permanence_from_codes(notice_text)
    phrased = classify.permanence_from_phrases(notice_text)
    failures = []
    for address in recipients:
        context = _context(address, recipients, notice_text)
        permanent = classify.permanence_from_codes(context)
        if permanent is None:
            permanent = overall
        if permanent is None and address in temporary:
            permanent = False
        if permanent is None:
            permanent = phrased if phrased is not None else True
        # Codes elsewhere in the notice describe this address only when it is the only one.
        alone = len(recipients) == 1
        codes = classify.enhanced_statuses(context)
        if not codes and alone:
            codes = classify.enhanced_statuses(notice_text)
        status = next((c for c in codes if c[0] == ("5" if permanent else "4")), None)
        diagnostic = _diagnostic(context) or (_diagnostic(notice_text) if alone else None)
        reason = f"{context}\n{diagnostic or ''}"
        failures.append(
            Failure(
                address=address,
                permanent=permanent,
                status=status,
                diagnostic=diagnostic,
                policy=classify.is_policy(status, reason),
            )
        )
    return failures


def judge_notice(notice_text: str) -> Failure:
    """Permanence, status and policy of a notice that names no recipient we can find."""
    return failures_for([""], notice_text)[0]


def excluded_addresses(msg: Message, original: Message | None) -> set[str]:
    """Our own addresses as the bounce shows them: never the bounced member."""
    names = ("To", "Return-Path", "From", "Sender")
    found: set[str] = set()
    for name in names:
        found.update(addresses.find_all(mime.header(msg, name)))
    if original is not None:
        for name in ("From", "Sender", "Return-Path", "Reply-To"):
            found.update(addresses.find_all(mime.header(original, name)))
    return found


def _line_matches(line: str) -> list[str]:
    if "@" not in line:
        return []
    return [m.group("addr") for p in RECIPIENT_LINES for m in p.finditer(line)]


def _context(address: str, recipients: list[str], text: str) -> str:
    """The lines from each mention of ``address`` up to the next recipient or blank line."""
    if not address:
        return ""
    lines = text.split("\n")
    others = [r for r in recipients if r != address]
    chunks: list[str] = []
    for index, line in enumerate(lines):
        if address not in line.lower():
            continue
        chunk = [line]
        for follow in lines[index + 1 : index + 6]:
            lowered = follow.lower()
            if not follow.strip() or any(o in lowered for o in others):
                break
            chunk.append(follow)
        chunks.append("\n".join(chunk))
    return "\n".join(chunks)


def _diagnostic(text: str) -> str | None:
    """The first line carrying a reply code, with its continuation lines, on one line."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if classify.basic_codes(line) or classify.enhanced_statuses(line):
            chunk = [line]
            for follow in lines[index + 1 : index + 8]:
                if not follow.strip():
                    break
                chunk.append(follow)
            return re.sub(r"\s+", " ", " ".join(chunk)).strip()[:500] or None
    return None
