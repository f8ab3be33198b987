"""ARC sealing of list posts (RFC 8617): the list vouches for what it saw before it changed it.

A list changes a post (subject prefix, footer, List-* fields), so the author's DKIM signature
no longer verifies downstream.  ARC lets the list record its own authentication results
for the post as received and seal them, so a receiver that trusts the list can still
honour them::

    sealer = Sealer.from_settings(settings)                   # once per process; None when off
    chain = sealer.chain_status(raw)                          # the post as received: pass|fail|none
    arc = sealer.seal(decorated, results=["dkim=pass header.d=city.example",
                                          "spf=pass smtp.mailfrom=city.example"], chain=chain)
    shared = arc + decorated                                  # then DKIM-sign copies as usual

``seal`` returns the ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results,
instance one above the highest already in the message) to put in front of the decorated,
shared message, once per post: the personal lines and DKIM-Signature go on top of it
afterwards, and the ARC-Message-Signature does not cover them.  ``chain`` is the
validation of the ARC sets the post arrived with (``arc=`` in the seal's results); a post
that arrived with none, or whose sets decoration dropped, starts a new chain (cv=none).

dkimpy does the work (``dkim.arc_sign``, ``dkim.arc_verify``; it needs the ``authres``
package) with the RSA key of ``CITYMAIL_DKIM_KEY``: RFC 8617 defines rsa-sha256 only.
Its RSA is pure Python: two signatures, about 15 ms per post, never per recipient.

Exceptions: ``SettingsError`` for a missing authres or a key that is not RSA; a message
that cannot be sealed is logged and sent without a new ARC set (``seal`` returns b"").
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from typing import Protocol

import dkim

from mailer.authresults import AuthResult, trusted_results
from mailer.dkim_sign import DkimSettings, Signer
from mailer.dkim_verify import DnsFunc, verify_signatures
from mailer.errors import SettingsError

__all__ = ["ArcSettings", "Sealer", "results_to_seal"]

log = logging.getLogger(__name__)
_dkimpy_log = logging.getLogger(f"{__name__}.dkimpy")

_ARC_SEAL = re.compile(rb"^ARC-Seal\s*:", re.IGNORECASE | re.MULTILINE)
_CHAIN = {dkim.CV_Pass: "pass", dkim.CV_Fail: "fail", dkim.CV_None: "none"}


class ArcSettings(DkimSettings, Protocol):
    """The settings a Sealer is built from (see ``mailer.dkim_sign.DkimSettings``)."""

    arc_seal: bool
    arc_authserv_id: str


@dataclass(frozen=True)
class Sealer:
    """Seals posts for one ADMD: its authserv-id, the signing domain and the RSA key."""

    authserv_id: str
    domain: str
    selector: str
    pem: bytes = field(repr=False)
    dnsfunc: DnsFunc | None = None  # None: dkimpy's resolver (dnspython)
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: ArcSettings, *,
                      dnsfunc: DnsFunc | None = None) -> Sealer | None:
        """Build the process's sealer; None unless ``CITYMAIL_ARC_SEAL`` is on."""
        if not settings.arc_seal:
            return None
        signer = Signer.from_settings(settings)  # the same key checks, the same messages
        if signer is None or settings.dkim_key is None:
            raise SettingsError("CITYMAIL_ARC_SEAL needs CITYMAIL_DKIM_KEY and "
                                "CITYMAIL_DKIM_SELECTOR: ARC seals with the RSA DKIM key")
        try:
            import authres  # noqa: F401  # dkimpy's ARC code needs it
        except ImportError:
            raise SettingsError("CITYMAIL_ARC_SEAL needs authres: pip install "
                                "'authres>=1.2'") from None
        authserv_id = settings.arc_authserv_id or signer.domain
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", authserv_id):
            raise SettingsError("CITYMAIL_ARC_AUTHSERV_ID must be a host name such as "
                                f"lists.cacities.org, got {authserv_id!r}")
        return cls(authserv_id, signer.domain, signer.keys[0].selector,
                   settings.dkim_key.read_bytes(), dnsfunc)

    def chain_status(self, raw: bytes) -> str:
        """Validate the ARC sets *raw* arrived with: "pass", "fail" or "none"."""
        cv, _, reason = dkim.arc_verify(raw, logger=_dkimpy_log, dnsfunc=self._dns())
        if cv is None:  # an earlier sealer reported failure: the chain is over
            return "fail"
        status = _CHAIN.get(cv, "fail")
        if status == "fail":
            log.info("inbound ARC chain fails: %s", reason)
        return status

    def seal(self, message: bytes, *, results: Iterable[str], chain: str = "none") -> bytes:
        """Return the ARC set for *message* (CRLF-terminated lines), or b"" when it cannot.

        *results* are RFC 8601 resinfo strings for the post as received ("dkim=pass
        header.d=city.example", "spf=pass smtp.mailfrom=city.example", "dmarc=..."); the
        ``arc=`` result is added from *chain*.
        """
        if chain not in ("pass", "fail", "none"):
            raise ValueError(f"chain must be pass, fail or none, got {chain!r}")
        items = [r.strip() for r in results if r.strip()]
        if any("\r" in r or "\n" in r or r.startswith("arc=") for r in items):
            raise ValueError("results must be single-line resinfo strings without arc=")
        head = message.split(b"\r\n\r\n", 1)[0]  # not a wrapped original's own sets
        if not _ARC_SEAL.search(head):
            chain = "none"  # no earlier set left in the message: a new chain starts here
        header = ("Authentication-Results: " + self.authserv_id + "".join(
            f";\r\n {r}" for r in [*items, f"arc={chain}"]) + "\r\n").encode("utf-8")
        try:
            lines = dkim.arc_sign(header + message, self.selector.encode(),
                                  self.domain.encode(), self.pem, self.authserv_id.encode(),
                                  timestamp=int(self.clock()), logger=_dkimpy_log)
        except dkim.DKIMException as exc:
            log.warning("post not ARC-sealed: %s", exc)
            return b""
        if not lines:
            log.warning("post not ARC-sealed: dkimpy found no results to seal")
        return b"".join(lines)

    def _dns(self) -> DnsFunc:
        if self.dnsfunc is not None:
            return self.dnsfunc
        from dkim.dnsplug import get_txt  # dkimpy's own resolver (dnspython)

        return get_txt


_TOKEN = re.compile(r"[A-Za-z0-9._@+-]+")


def _value(text: str) -> str:
    """A property value as RFC 8601 allows it: a token, else a quoted string."""
    clean = "".join(c for c in text if " " <= c <= "~" and c not in '"\\')[:200]
    return clean if _TOKEN.fullmatch(clean) else f'"{clean}"'


def _resinfo(result: AuthResult) -> str:
    text = f"{result.method}={_value(result.result)}"
    if result.reason:
        text += f" reason={_value(result.reason)}"
    return text + "".join(f" {k}={_value(v)}" for k, v in result.properties[:6]
                          if _TOKEN.fullmatch(k))


def results_to_seal(raw: bytes, msg: Message, *, trusted_ids: Iterable[str],
                    dnsfunc: DnsFunc | None = None, verify: bool = True) -> tuple[str, ...]:
    """The authentication results the list vouches for in its ARC-Authentication-Results.

    What a trusted verifier in front (``CITYMAIL_TRUSTED_AUTHSERV_IDS``) reported, method by
    method; without one, the post's own DKIM signatures as we verify them (DNS: call this
    outside any database transaction). Never raises.
    """
    try:
        trusted = trusted_results(msg, trusted_ids)
    except Exception:  # hostile headers: nothing trusted
        trusted = {}
    if trusted:
        return tuple(_resinfo(r) for results in trusted.values() for r in results)
    if not verify:
        return ("dkim=none",)
    checked = verify_signatures(raw, dnsfunc=dnsfunc)
    if not checked:
        return ("dkim=none",)
    return tuple(f"dkim={r.result} header.d={_value(r.domain or 'unknown')} "
                 f"header.s={_value(r.selector or 'unknown')}" for r in checked)
