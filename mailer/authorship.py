"""Who wrote a message: robust address extraction and organisational domains.

One parser for the addresses that authentication (DMARC alignment) and posting policy both
judge, so that the two can never disagree about who the author is. Every function here is
pure and total: broken, hostile or undecodable headers yield empty results, never an
exception.

The organisational domain (RFC 7489 section 3.2) comes from the Public Suffix List shipped
by the ``publicsuffixlist`` package, loaded on first use. A naive "last two labels" rule would
make every ``ci.<city>.ca.us`` address align with every other one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from email.message import Message
from email.policy import default as _default_policy
from email.utils import getaddresses

from publicsuffixlist import PublicSuffixList

__all__ = [
    "MAX_FIELDS",
    "addresses",
    "aligned",
    "author_addresses",
    "author_domain",
    "clean_header",
    "domain_of",
    "header_values",
    "normalise_domain",
    "organisational_domain",
]

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"[\r\n]+")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")
_LOCAL = re.compile(r"^[^@\s<>()\[\],;:\\\"]{1,64}$")
# The email package's RFC 5322 parser takes quadratic time: 10 s for 5,000 addresses. Longer
# values (far beyond any recipient limit) are read by getaddresses alone, as ambiguous.
_STRICT_LIMIT = 8 * 1024
MAX_FIELDS = 8  # address fields of one name read with the strict parser; more is hostile


def clean_header(value: object) -> str:
    """Unfold a raw header value and make it valid text (undecodable bytes become U+FFFD)."""
    text = value if isinstance(value, str) else str(value)
    text = _LINE_BREAK.sub(" ", _FOLD.sub("", text))
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip()


def header_values(msg: Message, name: str) -> tuple[str, ...]:
    """Every raw value of header *name*, unfolded and cleaned, in message order (top first)."""
    wanted = name.lower()
    try:
        items = list(msg.raw_items())
    except Exception:  # a foreign Message subclass; treat as headerless
        return ()
    return tuple(clean_header(v) for k, v in items if str(k).strip().lower() == wanted)


def normalise_domain(domain: str) -> str:
    """Lower-case, strip dots and brackets, and IDNA-encode a domain; '' when not a hostname."""
    d = domain.strip().strip(".").lower()
    if not d or d.startswith("["):
        return ""
    if not d.isascii():
        try:
            d = d.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return d if len(d) <= 253 and _DOMAIN.match(d) else ""


def _valid_addr_spec(addr: str) -> str:
    """The address lower-cased when it is a plain local@domain, else ''."""
    local, at, domain = addr.strip().rpartition("@")
    if not at or not _LOCAL.match(local):
        return ""
    host = normalise_domain(domain)
    return f"{local.lower()}@{host}" if host else ""


def _strict_parse(name: str, value: str) -> list[str] | None:
    """Addresses by the email package's RFC 5322 parser; None if it fails."""
    try:
        return [a.addr_spec for a in _default_policy.header_factory(name, value).addresses]
    except Exception:  # the stdlib parser raises assorted errors on hostile input
        return None


def _lenient_parse(value: str) -> list[str]:
    try:
        return [addr for _, addr in getaddresses([value])]
    except Exception:  # getaddresses is old code; never let it crash policy
        return []


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def addresses(name: str, value: str, *, strict: bool = True) -> tuple[tuple[str, ...], bool]:
    """Valid addresses in one address header value, and whether the value is ambiguous.

    Both the strict RFC 5322 parser and the lenient ``getaddresses`` read the value; when they
    disagree about the valid addresses (``a@x.org)<b@y.org>``, ``a@x.org <b@y.org>`` and
    friends, CVE-2023-27043), the value is ambiguous and the union of both readings is
    returned, so that callers can choose to count them all or to trust none. A value too long
    for the strict parser, or read with ``strict=False``, is ambiguous too.
    """
    strict_found = _strict_parse(name, value) if strict and len(value) <= _STRICT_LIMIT else None
    lenient = _unique(_valid_addr_spec(a) for a in _lenient_parse(value))
    if strict_found is None:
        return lenient, True
    strict_valid = _unique(_valid_addr_spec(a) for a in strict_found)
    return _unique((*strict_valid, *lenient)), set(strict_valid) != set(lenient)


def author_addresses(msg: Message) -> tuple[tuple[str, ...], str | None]:
    """The From addresses, and a problem description when the From field is not usable.

    Usable means: exactly one From header holding exactly one unambiguous valid address.
    Several unambiguous addresses are all returned (with a problem); an ambiguous From
    returns none, since nobody can tell whom a reader's mail program will show.
    """
    values = header_values(msg, "From")
    if not values:
        return (), "no From header"
    found: list[str] = []
    ambiguous = False
    for value in values[:MAX_FIELDS]:
        addrs, unclear = addresses("From", value)
        found.extend(addrs)
        ambiguous = ambiguous or unclear
    if ambiguous:
        return (), "From header is ambiguous or malformed"
    unique = _unique(found)
    if len(values) > 1:
        return unique, f"{len(values)} From headers"
    if not unique:
        return (), "From header holds no valid address"
    if len(unique) > 1:
        return unique, f"From header holds {len(unique)} addresses"
    return unique, None


def author_domain(msg: Message) -> str | None:
    """The single author's domain (RFC 7489 "RFC5322.From domain"), or None if not usable."""
    found, problem = author_addresses(msg)
    return domain_of(found[0]) or None if problem is None else None


def domain_of(address: str) -> str:
    """The normalised domain of an address (or of a bare ``@domain`` / domain), '' if none."""
    return normalise_domain(address.rpartition("@")[2])


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@functools.lru_cache(maxsize=4096)
def organisational_domain(domain: str) -> str:
    """The registered domain below the public suffix (``ci.berkeley.ca.us`` → ``berkeley.ca.us``).

    A public suffix itself (``ca.us``, ``com``) is its own organisational domain, so that it
    aligns with nothing registered beneath it. Returns '' for a non-hostname.
    """
    d = normalise_domain(domain)
    if not d:
        return ""
    return _psl().privatesuffix(d) or d


def aligned(domain: str | None, author: str | None) -> bool:
    """Relaxed DMARC alignment: both domains share one organisational domain."""
    if not domain or not author:
        return False
    org = organisational_domain(domain)
    return bool(org) and org == organisational_domain(author)
