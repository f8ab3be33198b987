"""Sender authentication verdicts, read from trusted Authentication-Results headers (RFC 8601).

Only headers whose authserv-id is in the configured set count; every other one, including an
``Authentication-Results`` that the sender wrote into the message itself, is ignored. Among
the trusted headers the topmost one that reports a method wins for that method: a border MTA
prepends its headers, so anything a sender forged under our authserv-id sits lower down.
RFC 8601 section 5 still requires the border MTA to delete such forgeries on entry (OpenDKIM
``RemoveARAll``, OpenDMARC, or a Postfix ``header_checks`` rule): configure it to.

Alignment is DMARC's relaxed alignment (RFC 7489 section 3.1): the DKIM ``d=`` domain or the
SPF MAIL FROM domain shares the organisational domain of the single From address.

Nothing here raises on hostile input; a header that cannot be read is treated as absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import Message
from typing import Literal

from mailer.authorship import aligned, author_domain, domain_of, header_values, normalise_domain

__all__ = [
    "NO_VERDICT",
    "AuthResult",
    "AuthResultsHeader",
    "AuthVerdict",
    "VerdictSource",
    "merge_verdicts",
    "normalise_authserv_id",
    "parse_authentication_results",
    "trusted_results",
    "verdict_from_authres",
]

VerdictSource = Literal["authres", "dkim", "none"]


@dataclass(frozen=True)
class AuthVerdict:
    """What is proven about the author (From) of one message.

    ``dmarc`` is the DMARC result a trusted verifier reported for this From domain: "pass",
    "fail", "none" (not evaluated, or no policy), "temperror", "permerror" (also: the From
    field names no single author), or another RFC 8601 result word.
    """

    dkim_aligned: bool = False
    spf_aligned: bool = False
    dmarc: str = "none"
    source: VerdictSource = "none"
    from_domain: str | None = None

    @property
    def authenticated(self) -> bool:
        """True when an aligned DKIM or SPF pass, or a DMARC pass, vouches for the From."""
        return self.dkim_aligned or self.spf_aligned or self.dmarc == "pass"


NO_VERDICT = AuthVerdict()


@dataclass(frozen=True)
class AuthResult:
    """One resinfo: ``method=result [reason=...] ptype.property=value ...``."""

    method: str
    result: str
    reason: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def prop(self, name: str) -> str | None:
        """The first value of property *name* (``header.d``, ``smtp.mailfrom``...), or None."""
        wanted = name.lower()
        return next((v for k, v in self.properties if k == wanted), None)


@dataclass(frozen=True)
class AuthResultsHeader:
    """One parsed Authentication-Results header field."""

    authserv_id: str
    results: tuple[AuthResult, ...]


# The look-behind makes a key start only at the start of a word: linear time on long runs.
_PAIR = re.compile(
    r"(?<![A-Za-z0-9._-])([A-Za-z0-9][A-Za-z0-9._-]*(?:\s*/\s*[0-9]+)?)\s*=\s*"
    r'("(?:[^"\\]|\\.)*"|[^\s";]*)'
)
_MAX_LENGTH = 16 * 1024  # no verifier writes more; longer values are ignored
_ID = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^\s;]+)')


def _strip_comments(text: str) -> str:
    """Remove RFC 5322 comments (nested, with escapes), keeping quoted strings intact."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
        elif ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
        elif quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif depth == 0:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


def _split_semicolons(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _resinfo(piece: str) -> AuthResult | None:
    """The one result in a ';'-separated piece: ``method=result``, then reason and properties.

    A second ``method=result`` without a ';' before it is ignored, not read as a result: a
    sender-controlled value that an MTA failed to quote must never be able to add one.
    """
    pairs = _PAIR.findall(piece)
    if not pairs or "." in pairs[0][0]:
        return None
    method, result = re.sub(r"\s", "", pairs[0][0]).lower(), _unquote(pairs[0][1]).lower()
    reason: str | None = None
    props: list[tuple[str, str]] = []
    for key, raw in pairs[1:]:
        key = key.lower()
        if key == "reason" and reason is None and not props:
            reason = _unquote(raw)
        elif "." in key:
            props.append((key, _unquote(raw)))
    return AuthResult(method.partition("/")[0], result, reason, tuple(props))


def parse_authentication_results(value: str) -> AuthResultsHeader | None:
    """Parse one Authentication-Results field value; None when it has no authserv-id."""
    if len(value) > _MAX_LENGTH:
        return None
    pieces = _split_semicolons(_strip_comments(value))
    found = _ID.match(pieces[0])
    if not found:
        return None
    authserv_id = normalise_authserv_id(_unquote(found.group(1)))
    if not authserv_id:
        return None
    results = tuple(r for r in map(_resinfo, pieces[1:]) if r is not None)
    return AuthResultsHeader(authserv_id, results)


def normalise_authserv_id(value: str) -> str:
    """Lower-case, trailing dot removed: how authserv-ids are compared."""
    return value.strip().rstrip(".").lower()


def trusted_results(msg: Message, trusted_ids: Iterable[str]) -> dict[str, tuple[AuthResult, ...]]:
    """Results per method from the topmost trusted header that reports that method."""
    trusted = {normalise_authserv_id(i) for i in trusted_ids} - {""}
    by_method: dict[str, tuple[AuthResult, ...]] = {}
    for value in header_values(msg, "Authentication-Results"):
        parsed = parse_authentication_results(value)
        if parsed is None or parsed.authserv_id not in trusted:
            continue
        for method in dict.fromkeys(r.method for r in parsed.results):
            by_method.setdefault(method, tuple(r for r in parsed.results if r.method == method))
    return by_method


def _dkim_domain(result: AuthResult) -> str:
    return normalise_domain(result.prop("header.d") or "") or domain_of(
        result.prop("header.i") or ""
    )


def _spf_domain(result: AuthResult) -> str:
    mail_from = result.prop("smtp.mailfrom") or result.prop("smtp.mfrom")
    return domain_of(mail_from) if mail_from else normalise_domain(result.prop("smtp.helo") or "")


def _dmarc(results: tuple[AuthResult, ...], author: str | None) -> str:
    if not results:
        return "none"
    if author is None:
        return "permerror"
    for r in results:
        header_from = r.prop("header.from")
        if header_from is None or normalise_domain(header_from) == author:
            return r.result
    return "none"


def _any_aligned_pass(
    results: tuple[AuthResult, ...], domain: Callable[[AuthResult], str], author: str | None
) -> bool:
    return any(r.result == "pass" and aligned(domain(r), author) for r in results)


def verdict_from_authres(msg: Message, *, trusted_ids: Iterable[str]) -> AuthVerdict:
    """The verdict that our own verifiers (trusted authserv-ids) wrote into *msg*."""
    author = author_domain(msg)
    by_method = trusted_results(msg, trusted_ids)
    if not by_method:
        return AuthVerdict(from_domain=author)
    return AuthVerdict(
        dkim_aligned=_any_aligned_pass(by_method.get("dkim", ()), _dkim_domain, author),
        spf_aligned=_any_aligned_pass(by_method.get("spf", ()), _spf_domain, author),
        dmarc=_dmarc(by_method.get("dmarc", ()), author),
        source="authres",
        from_domain=author,
    )


def merge_verdicts(first: AuthVerdict, second: AuthVerdict) -> AuthVerdict:
    """Combine two verdicts on the same message: any proof from either counts.

    The source names what made the merged verdict pass ("authres" first), or, when nothing
    passed, what was consulted.
    """
    passing = [v for v in (first, second) if v.authenticated]
    consulted = [v for v in (first, second) if v.source != "none"]
    source = (passing or consulted or [first])[0].source
    dmarc = first.dmarc if first.source != "none" or second.source == "none" else second.dmarc
    return AuthVerdict(
        dkim_aligned=first.dkim_aligned or second.dkim_aligned,
        spf_aligned=first.spf_aligned or second.spf_aligned,
        dmarc=dmarc,
        source=source,
        from_domain=first.from_domain or second.from_domain,
    )
