"""Log records as text (the default) or as one JSON object per line, carrying message ids.

``CITYMAIL_LOG_FORMAT=json`` makes every record one line of JSON with the time (UTC),
level, logger, process, thread and message, plus the ids of the work in hand: the
``inbound_id`` of the message being processed, the ``outbound_id`` and ``chunk``
("first-last" delivery ids) being sent.  The ids live in context variables, set by the
``log_ids`` decorator around the functions that process one message or one chunk, so
every record logged underneath, by any module, carries them without passing them down.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "configure_logging",
    "current_ids",
    "log_context",
    "log_ids",
]

TEXT_FORMAT = "%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s"
_ids: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("citymail_log_ids",
                                                                      default={})  # noqa: B039
F = TypeVar("F", bound=Callable[..., Any])


def current_ids() -> dict[str, Any]:
    return dict(_ids.get())


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Records logged inside carry ``ids`` (added to those of an outer context)."""
    token = _ids.set({**_ids.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _ids.reset(token)


def log_ids(**fields: str) -> Callable[[F], F]:
    """Decorator: set log ids from the call's arguments, e.g.
    ``@log_ids(inbound_id="item.inbound_id")`` or ``@log_ids(chunk="first-last")``
    (two argument names joined by "-")."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        def pick(arguments: dict[str, Any], path: str) -> Any:
            if "-" in path:
                return "-".join(str(pick(arguments, p)) for p in path.split("-"))
            name, *attrs = path.split(".")
            value = arguments.get(name)
            for attr in attrs:
                value = getattr(value, attr, None)
            return value

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                arguments = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:  # let the call itself fail with the usual message
                return fn(*args, **kwargs)
            with log_context(**{key: pick(arguments, path) for key, path in fields.items()}):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises on odd arguments."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.processName,
            "pid": record.process,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        entry.update(_ids.get())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str = "text", *, level: int = logging.INFO) -> None:
    """The process's one log handler, on stderr, in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
