"""Email commands: read what a person asked for in the Subject and the first body lines.

Pure.  The body is read as a person writes a reply: quoted lines (``>``), attribution
lines ("On … wrote:", "Le … a écrit :"), and everything after a signature (``-- ``) or an
Outlook original-message block are not theirs.  ``Re:``/``AW:``/``Fwd:`` markers and a
``[list]`` prefix are taken off the Subject.  Bodies may be base64, quoted-printable, any
charset, or HTML only (see :mod:`listservs.mailtext`).

Commands (case-insensitive, first word; see :data:`VERBS`)::

    help                      join | subscribe [digest|nomail]   leave | unsubscribe
    digest on|off|plain|mime  nomail [on|off] | mail             who (owners only)
    confirm TOKEN             approve | reject REASON | discard  end | stop | thanks

The first body line that is not a command ends the commands (it is prose, or a
signature the sender forgot to mark); at most ``MAX_LINES`` lines are read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from email.message import Message

from listservs.confirm import TOKEN_PATTERN
from listservs.mailtext import body_text, clean_line, subject_text

__all__ = [
    "VERBS",
    "Command",
    "Decision",
    "Parsed",
    "parse_command",
    "parse_commands",
    "reply_decision",
    "reply_lines",
    "strip_subject",
]

MAX_LINES = 10

# spelling -> canonical verb
VERBS: dict[str, str] = {
    "help": "help", "info": "help", "?": "help",
    "join": "join", "subscribe": "join", "sub": "join",
    "leave": "leave", "unsubscribe": "leave", "unsub": "leave", "signoff": "leave",
    "digest": "digest", "nomail": "nomail", "mail": "mail",
    "who": "who", "members": "who",
    "confirm": "confirm", "yes": "confirm", "ok": "confirm",
    "approve": "approve", "approved": "approve", "accept": "approve",
    "reject": "reject", "refuse": "reject", "deny": "reject",
    "discard": "discard", "drop": "discard",
    "cancel": "cancel", "no": "cancel",
    "end": "end", "stop": "end", "thanks": "end", "thank": "end",
}
DECISIONS = frozenset({"approve", "reject", "discard", "confirm", "cancel"})

_MARKERS = re.compile(
    r"^\s*(?:(?:re|aw|sv|antw|vs|odp|rif|ynt|fwd|fw|wg|rv|tr)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]"
    r"|\[[^\]]{0,80}\])\s*", re.IGNORECASE)
_ATTRIBUTION = re.compile(
    r"(wrote|writes|a\s+écrit|schrieb|escribió|scrisse|schreef|skrev|napisał|escreveu)\s*:\s*$",
    re.IGNORECASE)
_ATTRIBUTION_START = re.compile(r"^(on|le|am|el|il|op|den|w|em)\s", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"^(-{2,}\s*(original message|forwarded message|ursprüngliche nachricht|message d'origine)"
    r"\s*-{2,}|_{8,}|from:\s.+|de\s*:\s.+|von:\s.+|sent from my .+)$", re.IGNORECASE)
_PUNCT = ".!,;:"


@dataclass(frozen=True)
class Command:
    verb: str  # a value of VERBS
    args: tuple[str, ...]
    line: str  # as written, cleaned, for the answer
    source: str  # "subject" | "body"
    rest: str = ""  # the text after the verb, as written (a rejection reason)


@dataclass(frozen=True)
class Parsed:
    commands: tuple[Command, ...]
    ignored: tuple[str, ...]  # the body line that ended the commands, if any
    token: str | None  # a confirmation token found in the Subject or a confirm command


@dataclass(frozen=True)
class Decision:
    """A reply's answer to a confirmation or moderation notice."""

    action: str  # approve | reject | discard | confirm | cancel
    reason: str = ""


def strip_subject(subject: str) -> str:
    """The Subject without reply/forward markers and ``[list]`` prefixes."""
    text = " ".join(subject.split())
    while (match := _MARKERS.match(text)) and match.end():
        text = text[match.end():]
    return text.strip()


def reply_lines(text: str) -> list[str]:
    """The lines a person wrote at the top of a reply, without quotes and signature."""
    out: list[str] = []
    for raw in text.split("\n"):
        line = clean_line(raw)
        stripped = line.strip()
        if line in ("-- ", "--") or stripped == "--" or _ORIGINAL.match(stripped):
            break
        if stripped.startswith(">") or stripped.startswith("|"):
            continue
        if _ATTRIBUTION.search(stripped):
            if out and _ATTRIBUTION_START.match(out[-1]) and parse_command(out[-1]) is None:
                out.pop()  # "On Tue, … Alice <" / "alice@x> wrote:" across two lines
            continue
        out.append(stripped)
    while out and not out[-1]:
        out.pop()
    return out


def _words(line: str) -> list[str]:
    return unicodedata.normalize("NFKC", line).split()


def parse_command(line: str, source: str = "body") -> Command | None:
    """One line as a command, or None when it is not one."""
    words = _words(line)
    if not words:
        return None
    if words[0].lower() == "set" and len(words) > 1:
        words = words[1:]
    first = words[0].lower().rstrip(_PUNCT) or words[0].lower()
    verb = VERBS.get(first)
    if verb is None:
        return None
    args = tuple(w.lower().rstrip(_PUNCT) for w in words[1:])
    rest = unicodedata.normalize("NFKC", line).strip()[len(words[0]):].strip()
    if verb == "end" and args[:1] not in ((), ("you",)):
        return None  # "thanks for the help" is prose, and ends the commands anyway
    if verb == "digest" and args[:1] in (("plain",), ("mime",)):  # digest plain|mime
        return Command(verb, args, line.strip(), source, rest)
    if verb in ("digest", "nomail") and args[:1] not in ((), ("on",), ("off",)):
        return None
    if verb in ("help", "who", "leave", "mail", "approve", "discard", "cancel") and len(args) > 2:
        return None  # a sentence that starts with a command word
    if verb == "confirm" and args and not TOKEN_PATTERN.fullmatch(args[0]):
        return None
    return Command(verb, args, line.strip(), source, rest)


def parse_commands(msg: Message) -> Parsed:
    """The commands in a message to ``LIST-request``, in order, subject first."""
    subject = strip_subject(subject_text(msg))
    token_match = TOKEN_PATTERN.search(subject)
    token = token_match.group(1).lower() if token_match else None
    commands: list[Command] = []
    subject_command = parse_command(subject, "subject") if subject else None
    if subject_command is not None and subject_command.verb not in DECISIONS:
        commands.append(subject_command)
    ignored: list[str] = []
    read = 0
    for line in reply_lines(body_text(msg)):
        if not line:
            continue
        read += 1
        if read > MAX_LINES:
            break
        command = parse_command(line, "body")
        if command is None:
            ignored.append(line[:200])
            break
        if command.verb == "end":
            break
        if command.verb == "confirm" and command.args:
            token = token or command.args[0]
        if commands and commands[-1].verb == command.verb and commands[-1].args == command.args:
            continue
        commands.append(command)
    return Parsed(tuple(commands), tuple(ignored), token)


def reply_decision(msg: Message) -> Decision | None:
    """The decision in a reply: its first own body line (else, with no own text, its Subject).

    ``reject REASON`` takes the rest of its line as the reason; a bare ``reject`` takes the
    lines below it, up to a blank line.
    """
    lines = reply_lines(body_text(msg))
    first = next((i for i, line in enumerate(lines) if line), None)
    if first is None:
        line, below = strip_subject(subject_text(msg)), []
    else:
        line, below = lines[first], lines[first + 1:first + 6]
    command = parse_command(line, "body")
    if command is None or command.verb not in DECISIONS:
        return None
    reason = ""
    if command.verb == "reject":
        reason = command.rest
        if not reason:
            taken = below[:below.index("")] if "" in below else below
            reason = " ".join(taken)
    return Decision(command.verb, reason.strip()[:1000])
