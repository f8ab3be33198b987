"""Threads for the archive's thread view: a simplified JWZ threading, pure.

For each message the parent is the nearest ancestor named in its References/In-Reply-To
that is among the messages given (JWZ's containers, without the empty ones: a reply
whose parent is missing hangs from the closest ancestor present). A message with no such
ancestor joins the earlier thread whose normalised subject is the same ("Re: [Clerks]
Budget" joins "Budget"), else it starts a thread. Loops are refused. Threads are ordered
by their first message, replies by date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Node", "ThreadItem", "flatten", "normal_subject", "thread"]

_MARKERS = re.compile(
    r"^\s*(?:(?:re|aw|sv|antw|vs|fwd?|wg)\s*(?:\[\d+\])?\s*[:：]\s*|\[[^\]]*\]\s*)", re.IGNORECASE)


@dataclass(frozen=True)
class ThreadItem:
    """One message as threading needs it."""

    key: int  # the caller's id (a post id)
    message_id: str
    refs: tuple[str, ...]  # ancestors, oldest first
    subject: str
    sent_at: dt.datetime


@dataclass
class Node:
    item: ThreadItem
    children: list[Node] = field(default_factory=list)


def normal_subject(subject: str) -> str:
    """The subject without reply/forward markers and list tags, case-folded."""
    previous = None
    text = subject
    while previous != text:
        previous, text = text, _MARKERS.sub("", text, count=1)
    return " ".join(text.split()).casefold()


def _is_ancestor(candidate: str, of: str, parent: dict[str, str]) -> bool:
    seen: set[str] = set()
    while of in parent and of not in seen:
        seen.add(of)
        of = parent[of]
        if of == candidate:
            return True
    return False


def thread(items: Iterable[ThreadItem]) -> list[Node]:
    """Roots of the threads among ``items``, each with its replies as children."""
    ordered = sorted(items, key=lambda i: (i.sent_at, i.key))
    nodes: dict[str, Node] = {}
    for item in ordered:
        nodes.setdefault(item.message_id, Node(item))  # a repeated id: the first one counts
    parent: dict[str, str] = {}
    for item in ordered:
        if nodes[item.message_id].item is not item:
            continue
        for ref in reversed(item.refs):
            if ref in nodes and ref != item.message_id and not _is_ancestor(
                    item.message_id, ref, parent):
                parent[item.message_id] = ref
                break
    roots: list[Node] = []
    by_subject: dict[str, Node] = {}
    for item in ordered:
        node = nodes[item.message_id]
        if node.item is not item:
            roots.append(Node(item))  # a duplicate Message-ID stands alone
            continue
        if item.message_id in parent:
            nodes[parent[item.message_id]].children.append(node)
            continue
        key = normal_subject(item.subject)
        earlier = by_subject.get(key) if key else None
        if earlier is not None:
            earlier.children.append(node)
        else:
            roots.append(node)
            if key:
                by_subject[key] = node
    return roots


def flatten(roots: Sequence[Node]) -> list[tuple[int, ThreadItem]]:
    """(depth, item) in reading order: each message followed by its replies."""
    out: list[tuple[int, ThreadItem]] = []
    stack = [(0, node) for node in reversed(roots)]  # iterative: threads can be deep
    while stack:
        depth, node = stack.pop()
        out.append((depth, node.item))
        stack.extend((depth + 1, child) for child in reversed(node.children))
    return out
