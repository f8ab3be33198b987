"""Every message of the shared inbound corpus is decorated without damage.

For each file (real Outlook, 8-bit, encoded headers, signed, broken MIME, TNEF...):
decoration never raises; the output parses; it has exactly one List-Id; every leaf
part of the original decodes exactly as before unless it is a text part that took
the footer (or a footer part that was added); no line over 998 octets appears
unless that very line was in an untouched original part; and a wrapped body is
carried byte for byte. The checks use CPython's parser only, not decoration's
own MIME code. The .tnef blobs are also sent as winmail.dat attachments.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from mailer.decorate import Body, Decoration, ListIdentity, decorate_report

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
INBOUND = CORPUS / "inbound"
FILES = sorted(INBOUND.iterdir()) if INBOUND.is_dir() else []
MARK = b"City Clerks department mailing list"
LIST = ListIdentity(
    address="city-clerks@lists.cacities.org",
    display_name="City Clerks department",
    short_name="City Clerks",
    help_url="https://lists.cacities.org/lists/city-clerks",
    subscribe_url="https://lists.cacities.org/lists/city-clerks",
    archive_url="https://lists.cacities.org/archives/city-clerks",
    footer_text=MARK.decode() + "\nOptions: https://lists.cacities.org/lists/city-clerks\n",
    reply_to="list",
)
FOOTER_ONLY = (MARK + b"\nOptions: https://lists.cacities.org/lists/city-clerks\n").strip()


@dataclass(frozen=True)
class Case:
    name: str
    load: Callable[[], bytes]


def _winmail(path: Path) -> Callable[[], bytes]:
    def load() -> bytes:
        blob = base64.encodebytes(path.read_bytes()).replace(b"\n", b"\r\n")
        return (
            b"From: Pat <pat@fresno.gov>\r\nSubject: minutes\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="w"\r\n\r\n'
            b"--w\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nMinutes attached.\r\n"
            b'--w\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + blob + b"--w--\r\n"
        )

    return load


CASES = [Case(p.name, p.read_bytes) for p in FILES] + [
    Case(f"winmail.dat:{p.name}", _winmail(p)) for p in FILES if p.suffix == ".tnef"
]


def test_corpus_is_present() -> None:
    if not INBOUND.is_dir():
        pytest.fail(f"the shared corpus is missing: expected {INBOUND}")
    assert len(FILES) > 300


_DONE: dict[str, tuple[bytes, Decoration]] = {}


def _decorated(case: Case) -> tuple[bytes, Decoration]:
    """Decorate a case once: the timing test fills this, the per-file checks reuse it."""
    if case.name not in _DONE:
        raw = case.load()
        _DONE[case.name] = (
            raw,
            decorate_report(
                raw, LIST, archived_at="https://lists.cacities.org/a/1", message_id="<m1@x.org>"
            ),
        )
    return _DONE[case.name]


def test_whole_corpus_decorates_in_under_30_seconds() -> None:
    started = time.perf_counter()
    for case in CASES:
        _decorated(case)
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_corpus_message_is_decorated_without_damage(case: Case) -> None:
    raw, report = _decorated(case)
    out = report.raw
    assert not report.reason.startswith("self-check"), report.reason

    head = BytesHeaderParser(policy=policy.compat32).parsebytes(out)
    assert len(head.get_all("List-Id", [])) == 1
    assert _text(head["Subject"]).startswith("[City Clerks]")
    footered = _check_leaves(raw, out)
    assert (footered > 0) == (report.body not in (Body.HEADERS_ONLY, Body.UNCHANGED))
    _check_long_lines(raw, out)
    if report.body is Body.WRAPPED:
        original_body = _crlf(raw).split(b"\r\n\r\n", 1)[-1]
        assert original_body in out


def _text(value: str) -> str:
    """Decode a header; a sender's broken encoded words are kept as written, so read raw."""
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError):
        return value


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _leaves(raw: bytes) -> list[Message]:
    message = message_from_bytes(raw, policy=policy.compat32)
    return [part for part in message.walk() if not part.is_multipart()]


def _content(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _check_leaves(raw: bytes, out: bytes) -> int:
    """Match the output's leaves to the original's; return how many took the footer."""
    before = [(p.get_content_type(), _content(p)) for p in _leaves(raw)]
    after = [_content(p) for p in _leaves(out)]
    i = footered = 0
    for j, content in enumerate(after):
        if i < len(before) and content == before[i][1]:
            i += 1
        elif MARK in content and content.strip() == FOOTER_ONLY:
            footered += 1  # a footer part of its own
        elif MARK in content and i < len(before) and before[i][0] in ("text/plain", "text/html"):
            footered += 1  # a text part that took the footer
            i += 1
        else:
            raise AssertionError(f"output leaf {j} does not match original leaf {i}")
    assert i == len(before), "an original part is missing from the output"
    return footered


def _check_long_lines(raw: bytes, out: bytes) -> None:
    long_lines = [line for line in out.split(b"\r\n") if len(line) > 998]
    if not long_lines:
        return
    original = {line for line in _crlf(raw).split(b"\r\n") if len(line) > 998}
    assert all(line in original for line in long_lines), "a new line over 998 octets"
    for part in _leaves(out):
        if MARK in _content(part):  # the parts decoration touched carry no long line
            encoded = part.get_payload()
            assert isinstance(encoded, str)
            assert max(map(len, encoded.splitlines() or [""])) <= 998
