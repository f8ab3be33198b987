"""HTML-only posts get a text/plain alternative, so text-only readers and digests get text.

Outlook and phone clients often send a post whose only text is text/html. Such a post
(alone, as the first part of a multipart/mixed, or as the root of a multipart/related
with its inline images) becomes a multipart/alternative: a text/plain rendering made by
inscriptis first, then the HTML entity byte for byte. The footer then goes into both
branches like any alternative. Nothing else changes; a post that already has a plain
text part, or is signed or encrypted, is left alone. Pure: ``add_text_alternative(data)``.
"""

from __future__ import annotations

import hashlib
import logging

from mailer import mime_edit
from mailer.mimetree import Entity, parse_tree
from mailer.wire import CRLF, field_name, to_wire_form

__all__ = ["add_text_alternative", "html_only_body", "html_to_text"]

log = logging.getLogger(__name__)

_OPAQUE = frozenset({"multipart/signed", "multipart/encrypted", "multipart/alternative"})
_MAX_HTML = 2 * 1024 * 1024  # larger HTML is rendered slowly and read by nobody as text


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of *html* (tables and lists laid out)."""
    from inscriptis import get_text  # imported on first use: nothing runs at import

    return get_text(html).strip("\n") + "\n"


def _walk(part: Entity) -> list[Entity]:
    found = [part]
    for child in part.children:
        found += _walk(child)
    return found


def _is_html(part: Entity) -> bool:
    return part.content_type == "text/html" and not part.is_attachment


def html_only_body(top: Entity) -> tuple[Entity, Entity] | None:
    """The entity holding a post's only text, if that is HTML: (the entity, its HTML leaf)."""
    parts = _walk(top)
    if any(p.defect or p.content_type in _OPAQUE for p in parts):
        return None
    if any(p.content_type == "text/plain" and not p.is_attachment for p in parts):
        return None
    body = top
    if top.content_type == "multipart/mixed" and top.children:
        body = top.children[0]
    if _is_html(body):
        return body, body
    if body.content_type == "multipart/related" and body.children and _is_html(
            body.children[0]):
        return body, body.children[0]
    return None


def _boundary(data: bytes) -> bytes:
    digest = hashlib.sha256(data).hexdigest().encode("ascii")
    for salt in range(len(digest) - 24):
        boundary = b"=_citymail_alt_" + digest[salt:salt + 24]
        if boundary not in data:
            return boundary
    return b"=_citymail_alt_" + digest  # unreachable in practice


def add_text_alternative(raw: bytes) -> bytes | None:
    """The post with a text/plain alternative before its HTML, or None when not HTML-only."""
    data = to_wire_form(raw)
    top = parse_tree(data)
    found = html_only_body(top)
    if found is None:
        return None
    body, leaf = found
    if leaf.end - leaf.body_start > _MAX_HTML:
        return None
    try:
        text = html_to_text(mime_edit.decoded_text(data, leaf))
    except Exception as exc:  # a parser failure must not lose the post: leave it as sent
        log.warning("no text alternative for an HTML-only post: %s", exc)
        return None
    fields = [f if f.endswith(CRLF) else f + CRLF for f in body.fields]
    html_fields = [f for f in fields if field_name(f).startswith("content-")]
    html_entity = b"".join(html_fields) + CRLF + data[body.body_start:body.end]
    plain_fields, plain_body = mime_edit.qp_text_part(text)
    boundary = _boundary(data)
    delimiter = b"--" + boundary
    new_body = b"".join([delimiter, CRLF, *plain_fields, CRLF, plain_body, CRLF,
                         delimiter, CRLF, html_entity, CRLF, delimiter, b"--", CRLF])
    content = [b'Content-Type: multipart/alternative; boundary="' + boundary + b'"' + CRLF]
    if body is top:
        keep = [f for f in fields if not field_name(f).startswith("content-")]
        if not any(field_name(f) == "mime-version" for f in keep):
            keep.append(b"MIME-Version: 1.0" + CRLF)
        return b"".join(keep + content) + CRLF + new_body
    splice = mime_edit.replace(data, top, body, content, new_body.removesuffix(CRLF))
    return mime_edit.apply(data, top, [splice])
