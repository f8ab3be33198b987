"""The DMARC policy an author's domain publishes (RFC 7489 section 6.6.3), cached with its TTL.

    policies = DmarcPolicies(dnspython_txt())            # once per process
    policies.policy_for("mail.yahoo.com")                # "reject" | "quarantine" | "none" | None

The record is looked up at ``_dmarc.<domain>``; when there is none, at ``_dmarc.<org
domain>`` (the Public Suffix List's registered domain), whose ``sp=`` then applies to the
subdomain. A lookup that fails (timeout, SERVFAIL) counts as no policy, so a DNS outage
never holds mail up; it is cached briefly. DNS is a function ``TxtLookup(name) ->
(strings, ttl) | None`` (None: no such record): :func:`dnspython_txt` for the real thing,
:func:`static_txt` in tests. Nothing here raises on hostile records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from mailer.authorship import normalise_domain, organisational_domain

__all__ = ["DEFAULT_MITIGATION", "DMARC_MITIGATIONS", "MITIGATED", "DmarcPolicies",
           "LookupFailed", "TxtLookup", "dnspython_txt", "parse_record", "static_txt"]

log = logging.getLogger(__name__)

TxtLookup = Callable[[str], "tuple[list[str], float] | None"]
MITIGATED = frozenset({"reject", "quarantine"})  # policies that make a list rewrite From
DMARC_MITIGATIONS = ("munge_from", "wrap_message", "none")  # a list's dmarc_mitigation
DEFAULT_MITIGATION = "munge_from"
_NEGATIVE_TTL = 300.0  # no record: ask again in five minutes
_FAILED_TTL = 60.0  # the lookup failed: treat as no policy for a minute
_MAX_TTL = 86400.0


class LookupFailed(Exception):
    """DNS did not answer (timeout, SERVFAIL): no policy, retried soon."""


def parse_record(strings: list[str]) -> dict[str, str] | None:
    """The tags of the one ``v=DMARC1`` record among TXT strings, or None (RFC 7489 6.6.3)."""
    records = [s for s in strings if s.strip().lower().replace(" ", "").startswith("v=dmarc1")]
    if len(records) != 1:  # none, or several: no policy
        return None
    tags: dict[str, str] = {}
    for item in records[0].split(";"):
        key, eq, value = item.partition("=")
        if eq:
            tags.setdefault(key.strip().lower(), value.strip().lower())
    return tags


def _policy(tags: dict[str, str] | None, *, subdomain: bool) -> str | None:
    if tags is None:
        return None
    value = tags.get("sp") if subdomain and "sp" in tags else tags.get("p")
    # RFC 7489 6.6.3: a record with an invalid p= but a valid rua= counts as p=none.
    return value if value in ("none", "quarantine", "reject") else "none"


class DmarcPolicies:
    """Policy lookups with a per-process cache, safe to share between worker threads."""

    def __init__(self, txt: TxtLookup, *, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 10_000) -> None:
        self.txt = txt
        self.clock = clock
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, dict[str, str] | None]] = {}
        self._lock = threading.Lock()

    def policy_for(self, domain: str) -> str | None:
        """The policy for mail From *domain*: "reject", "quarantine", "none", or None."""
        d = normalise_domain(domain)
        if not d:
            return None
        tags = self._record(d)
        if tags is not None:
            return _policy(tags, subdomain=False)
        org = organisational_domain(d)
        if not org or org == d:
            return None
        return _policy(self._record(org), subdomain=True)

    def _record(self, domain: str) -> dict[str, str] | None:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(domain)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            answer = self.txt(f"_dmarc.{domain}")
            tags = None if answer is None else parse_record(answer[0])
            ttl = _NEGATIVE_TTL if answer is None else min(max(answer[1], 1.0), _MAX_TTL)
        except Exception as exc:  # the DNS edge: any failure means "no policy" for now
            log.info("DMARC lookup for %s failed: %s", domain, exc)
            tags, ttl = None, _FAILED_TTL
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()  # crude but bounded; refilled from DNS
            self._cache[domain] = (now + ttl, tags)
        return tags


def dnspython_txt(*, timeout: float = 2.0, nameservers: list[str] | None = None) -> TxtLookup:
    """A TxtLookup through dnspython: short timeouts, NXDOMAIN and NODATA mean None."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=nameservers is None)
    if nameservers is not None:
        resolver.nameservers = nameservers
    resolver.lifetime = timeout
    resolver.timeout = timeout / 2

    def lookup(name: str) -> tuple[list[str], float] | None:
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{name}: {type(exc).__name__}") from None
        strings = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return strings, float(answer.rrset.ttl if answer.rrset is not None else 300)

    return lookup


def static_txt(records: Mapping[str, str | list[str]], *, ttl: float = 3600.0,
               failing: frozenset[str] = frozenset()) -> TxtLookup:
    """A TxtLookup answering from *records* (``"_dmarc.yahoo.com"`` → TXT); for tests.

    Names in *failing* raise as a timed-out lookup would.
    """
    table = {k.lower().rstrip("."): ([v] if isinstance(v, str) else list(v))
             for k, v in records.items()}

    def lookup(name: str) -> tuple[list[str], float] | None:
        key = name.lower().rstrip(".")
        if key in failing:
            raise LookupFailed(f"{name}: timeout")
        found = table.get(key)
        return None if found is None else (found, ttl)

    return lookup
