"""What a failure means: SMTP and enhanced status codes, permanence, and policy rejections.

The tables are ordered lists of regular expressions; read them as the policy they are.
"""

from __future__ import annotations

import re

# RFC 3463 enhanced status code: class 2/4/5, subject 0-7, detail 0-999.  The look-arounds
# keep IP addresses and version strings (Exim 4.92.3, 8.2.255.0) from matching.
ENHANCED_RE = re.compile(r"(?<![\w.])([245])\.([0-7])\.(\d{1,3})(?!\w|\.\d)")
# A Status field may carry codes that ENHANCED_RE is too careful for ("5.0.947").
STATUS_FIELD_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
# An enhanced code opening a reply: at the start, or right after the basic code ("550-5.7.26").
LEADING_RE = re.compile(
    r"(?:^\W*|(?<![\w.])[45]\d\d[\s-]+)#?([245])\.(\d{1,3})\.(\d{1,3})(?!\w|\.\d)"
)
# RFC 5321 reply code where a reply is expected: line start, after ':' or 'said', in brackets.
BASIC_RE = re.compile(
    r"(?:^|[:;\[(#]|\bsaid\b|<<<|\bcode\b|\berror\b|\breply\b|\bresponse\b)"
    r"[\s:]{0,8}([45][0-5]\d)(?=[\s\-.,:;)\]]|$)",
    re.IGNORECASE | re.MULTILINE,
)

# Phrases that mark a notice as a warning about a delay rather than a final failure.
TEMPORARY_PHRASES = re.compile(
    r"this is (?:just |only )?a warning|warning message only|do not need to resend"
    r"|(?:has been|is being|was) delayed|delivery (?:status notification )?\(delay\)"
    r"|(?:has|have) not yet been delivered|still undelivered|not yet delivered"
    r"|will (?:be )?retr(?:y|ied)|will (?:keep|continue)(?: to)? (?:try|trying|attempt)"
    r"|\bdeferred\b|temporar(?:y|ily) (?:failure|error|problem|unavailable|rejected)"
    r"|temp_failure|try again later|could not send message for past"
    r"|(?:cannot|could not) (?:send|deliver) (?:the )?message for (?:the )?(?:past )?\d+"
    r"|delivery time expired|message expired|retry time(?:out)? (?:exceeded|not reached)",
    re.IGNORECASE,
)
# Phrases that say outright that the failure is final; they win over TEMPORARY_PHRASES.
PERMANENT_PHRASES = re.compile(
    r"permanent(?:ly)? (?:fatal )?(?:error|failure|failed|rejected)|i'?ve given up"
    r"|fatal errors?|returned permanent errors",
    re.IGNORECASE,
)

# Rejections caused by the sender's reputation, content or authentication, not by the
# recipient's mailbox.  They are recorded but must never count toward disabling a member.
POLICY_RE = re.compile(
    r"\bspam|junk ?mail|unsolicited|bulk mail|black ?list|block ?list|deny ?list"
    r"|\b(?:rbl|dnsbl|uribl|surbl)\b|spamhaus|spamcop|barracuda|sorbs\b|cloudmark|proofpoint"
    r"|reputation|\bdmarc\b|\bspf\b|\bdkim\b|\bpolicy\b|\bpolicies\b|blocked|banned"
    r"|client host rejected|\bsender\b.{0,80}\b(?:rejected|denied|blocked|refused)"
    r"|(?:host|network|ip|sender|relay(?:ing)?) (?:\w+ )?not (?:allowed|permitted)"
    r"|not allowed to send|relay(?:ing)? (?:access )?denied"
    r"|not permitted to relay|reverse dns|\bptr\b|\brdns\b|unauthenticated"
    r"|authenticat\w*\b.{0,30}\b(?:required|failed|failure|checks)|content (?:rejected|filter)"
    r"|message content|\bvirus(?:es)?\b|infected|malware|phish|rate limit"
    r"|too many (?:connections|messages)"
    r"|throttl|suspicious|\bdenied\b.{0,40}\bip\b|\bip\b.{0,40}\bdenied\b",
    re.IGNORECASE,
)


def enhanced_statuses(text: str) -> list[str]:
    """Every enhanced status code in ``text``, in order (``5.1.1``)."""
    return [".".join(m.groups()) for m in ENHANCED_RE.finditer(text)]


def basic_codes(text: str) -> list[str]:
    """Every SMTP reply code in reply position in ``text``, in order (``550``)."""
    return [m.group(1) for m in BASIC_RE.finditer(text)]


def status_field(value: str) -> str | None:
    """The enhanced status in a DSN ``Status`` field, or None when it holds none."""
    match = STATUS_FIELD_RE.search(value or "")
    return ".".join(match.groups()) if match else None


def leading_status(diagnostic: str) -> str | None:
    """The enhanced code that opens an SMTP reply (``550 5.1.1 ...``), if any."""
    match = LEADING_RE.search(diagnostic or "")
    return ".".join(match.groups()) if match else None


def refine_status(status: str | None, diagnostic: str) -> str | None:
    """Prefer a more specific code from the diagnostic when ``status`` is missing or X.0.0.

    The code that opens the reply is trusted; codes further into free text are used only
    when they are not X.7.x, so a stray "(#5.7.17)" cannot turn "no such mailbox" into a
    policy rejection.
    """
    leading = leading_status(diagnostic)
    found = [leading] if leading else [c for c in enhanced_statuses(diagnostic) if c[2] != "7"]
    if status is None:
        return found[0] if found else None
    if status.endswith(".0.0"):
        for code in found:
            if code[0] == status[0] and not code.endswith(".0.0"):
                return code
    return status


def permanence_from_codes(text: str) -> bool | None:
    """True/False when ``text`` holds permanent (5xx) / only temporary (4xx) codes, else None."""
    codes = [c[0] for c in enhanced_statuses(text)] or [c[0] for c in basic_codes(text)]
    if "5" in codes:
        return True
    if "4" in codes:
        return False
    return None


def permanence_from_phrases(text: str) -> bool | None:
    """Judge a notice without codes by its wording: warnings are temporary."""
    if PERMANENT_PHRASES.search(text):
        return True
    if TEMPORARY_PHRASES.search(text):
        return False
    return None


def is_policy(status: str | None, diagnostic: str) -> bool:
    """True when a failure is a policy rejection (X.7.x, spam, DMARC, blocklists...)."""
    if status and status.split(".")[1:2] == ["7"]:
        return True
    return bool(POLICY_RE.search(diagnostic or ""))
