"""DKIM verification with dkimpy, and the aligned verdict it proves.

DNS is injectable: every function takes ``dnsfunc``, dkimpy's lookup signature
``dnsfunc(name: bytes, timeout: int = 5) -> bytes | str | None`` (a TXT record, or None).
``None`` means dkimpy's own resolver (dnspython); tests and offline tools pass
:func:`static_dns`.

A signature counts as a pass only when dkimpy verifies it *and* it covers the whole body:
a signature with a body length limit (``l=``) lets anyone append text below the signed
part, so it is reported as "policy" (RFC 8601 section 2.7.1), never as "pass".
Ed25519 signatures need PyNaCl; without it they are a "permerror", not a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import default as _default_policy
from typing import Literal

import dkim

from mailer.authorship import aligned, author_domain, normalise_domain
from mailer.authresults import AuthVerdict, merge_verdicts, verdict_from_authres

__all__ = [
    "DkimResult",
    "DnsFunc",
    "authenticate",
    "dkim_verdict",
    "static_dns",
    "verify_signatures",
]

log = logging.getLogger(__name__)
_dkimpy_log = logging.getLogger(f"{__name__}.dkimpy")  # dkimpy's chatter, to silence apart

DnsFunc = Callable[..., bytes | str | None]
DkimOutcome = Literal["pass", "fail", "policy", "temperror", "permerror"]


@dataclass(frozen=True)
class DkimResult:
    """The outcome of one DKIM-Signature (RFC 8601 words), with its d= and s=."""

    domain: str
    selector: str
    result: DkimOutcome
    reason: str = ""


def static_dns(records: Mapping[str, str | bytes]) -> DnsFunc:
    """A dnsfunc answering from *records* (``"sel._domainkey.example.com"`` → TXT text)."""
    table = {k.lower().rstrip("."): v for k, v in records.items()}

    def lookup(name: bytes | str, timeout: int = 5) -> bytes | str | None:
        key = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        return table.get(key.lower().rstrip("."))

    return lookup


def _signature_count(signer: dkim.DKIM) -> int:
    return sum(1 for name, _ in signer.headers if name.lower() == b"dkim-signature")


def _field(signer: dkim.DKIM, tag: bytes) -> str:
    fields = signer.signature_fields or {}
    return bytes(fields.get(tag, b"")).decode("ascii", "replace").strip()


def _classify(exc: Exception) -> tuple[DkimOutcome, str]:
    if isinstance(exc, dkim.DnsTimeoutError):
        return "temperror", "DNS timeout"
    if isinstance(exc, dkim.NaClNotFoundError):
        return "permerror", "ed25519 signature and PyNaCl is not installed"
    if isinstance(exc, dkim.ValidationError):  # e.g. the body hash does not match
        return "fail", str(exc)[:200]
    return "permerror", f"{type(exc).__name__}: {exc}"[:200]


def _verify_one(signer: dkim.DKIM, idx: int, dnsfunc: DnsFunc | None) -> DkimResult:
    signer.signature_fields = {}
    try:
        ok = signer.verify(idx=idx) if dnsfunc is None else signer.verify(idx=idx, dnsfunc=dnsfunc)
        outcome: DkimOutcome = "pass" if ok else "fail"
        reason = "" if ok else "signature did not verify"
    except Exception as exc:  # dkimpy raises DKIMException and assorted built-ins on junk
        outcome, reason = _classify(exc)
    domain, selector = _field(signer, b"d").lower(), _field(signer, b"s")
    if outcome == "pass" and _field(signer, b"l"):
        outcome, reason = "policy", "body length limit (l=) leaves the body open to additions"
    return DkimResult(domain, selector, outcome, reason)


def verify_signatures(
    raw: bytes,
    *,
    dnsfunc: DnsFunc | None = None,
    max_signatures: int = 5,
    minkey: int = 1024,
    timeout: int = 5,
) -> tuple[DkimResult, ...]:
    """Verify the topmost *max_signatures* DKIM signatures of the raw message bytes."""
    try:
        signer = dkim.DKIM(raw, logger=_dkimpy_log, minkey=minkey, timeout=timeout)
        count = min(_signature_count(signer), max_signatures)
    except Exception as exc:  # unparseable message: no signature can pass
        log.debug("DKIM: message not parseable: %s", exc)
        return ()
    return tuple(_verify_one(signer, idx, dnsfunc) for idx in range(count))


def _author_of(raw: bytes) -> str | None:
    try:
        headers: Message = BytesHeaderParser(policy=_default_policy).parsebytes(raw)
    except Exception:  # the email parser is lenient; belt and braces for hostile input
        return None
    return author_domain(headers)


def verdict_from_dkim(results: Iterable[DkimResult], author: str | None) -> AuthVerdict:
    """The verdict proven by DKIM results for the From domain *author*."""
    checked = tuple(results)
    return AuthVerdict(
        dkim_aligned=any(
            r.result == "pass" and aligned(normalise_domain(r.domain), author) for r in checked
        ),
        source="dkim" if checked else "none",
        from_domain=author,
    )


def dkim_verdict(
    raw: bytes, *, dnsfunc: DnsFunc | None = None, max_signatures: int = 5
) -> AuthVerdict:
    """Verify the message's own DKIM signatures and judge their alignment with its From."""
    results = verify_signatures(raw, dnsfunc=dnsfunc, max_signatures=max_signatures)
    return verdict_from_dkim(results, _author_of(raw))


def authenticate(
    raw: bytes,
    msg: Message,
    *,
    trusted_authserv_ids: Iterable[str],
    dnsfunc: DnsFunc | None = None,
    verify_dkim: bool = True,
) -> AuthVerdict:
    """The verdict for one inbound message: trusted Authentication-Results first, then DKIM.

    Our own DKIM verification runs only when the trusted headers prove nothing, so the usual
    case (the border MTA vouched) costs no DNS lookup.
    """
    from_headers = verdict_from_authres(msg, trusted_ids=trusted_authserv_ids)
    if from_headers.authenticated or not verify_dkim:
        return from_headers
    return merge_verdicts(from_headers, dkim_verdict(raw, dnsfunc=dnsfunc))
