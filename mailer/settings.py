"""Settings: one frozen object built from the ``CITYMAIL_*`` environment variables.

Nothing else in citymail reads the environment.  ``load_settings`` validates every value
at start-up and raises ``SettingsError`` with a message that says how to fix it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.errors import SettingsError

__all__ = ["Relay", "Settings", "load_settings"]


@dataclass(frozen=True)
class Relay:
    """Where outgoing mail goes: an outbox folder or an SMTP relay."""

    kind: str  # "outbox" | "smtp"
    path: Path | None = None
    host: str = ""
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything a citymail process needs to know about its environment."""

    database_url: str = "sqlite:///var/citymail.db"
    broker_url: str = "embedded"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    relay_url: str = "outbox:var/outbox"
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    list_domain: str = "lists.cacities.org"
    base_url: str = "http://127.0.0.1:8000"
    secret_keys: tuple[str, ...] = ()
    timezone: str = "America/Los_Angeles"
    relay_max_rcpt: int = 100
    max_message_size: int = 10 * 1024 * 1024
    var_dir: Path = Path("var")
    queue_namespace: str = "citymail"
    worker_threads: int = 8
    chunk_size: int = 200
    sqlite_synchronous: str = "FULL"
    trusted_authserv_ids: tuple[str, ...] = ()  # Authentication-Results we believe
    verify_dkim: bool = True  # check DKIM ourselves when no trusted header vouches
    rate: float = 0.0  # messages per second over all workers; 0: no limit
    rate_window: tuple[int, float] | None = None  # (messages, seconds), e.g. 10000 per hour
    domain_rates: dict[str, float] = field(default_factory=dict)  # domain -> messages/s
    retry_base: int = 60  # seconds before the first retry of a deferred copy; doubles each time
    give_up_hours: int = 96  # a copy still deferred after this long fails
    worker_lease: int = 30  # seconds without a heartbeat before a worker's claims are freed
    dkim_key: Path | None = None  # RSA private key (PEM) for DKIM; None: send unsigned
    dkim_selector: str = ""  # required with dkim_key
    dkim_domain: str = ""  # d=; "" means list_domain
    dkim_ed25519_key: Path | None = None  # optional second, Ed25519 signature (RFC 8463)
    dkim_ed25519_selector: str = ""  # required with dkim_ed25519_key; not the RSA one
    feed_poll_minutes: int = 30  # each newsletter feed is polled this often; 0: not by the clock
    relay: Relay = field(default_factory=lambda: Relay("outbox", path=Path("var/outbox")))
    # Reverse proxies whose X-Forwarded-For/-Proto/-Host the web believes (IPs or CIDRs).
    trusted_proxies: tuple[str, ...] = ()
    # ARC-seal list posts (RFC 8617) with the DKIM RSA key, when one is configured.
    arc_seal: bool = True
    arc_authserv_id: str = ""  # authserv-id in ARC-Authentication-Results; "" = DKIM domain
    # Where mail to citymail-owner@ goes; () = the web's admin accounts.
    site_owners: tuple[str, ...] = ()
    # DNS for DMARC policies: "" the system resolver, "off" no lookups, or nameserver IPs.
    dns_resolver: str = ""
    # Operations (issue 10): retention, /metrics access, log format.
    keep_deliveries_days: int = 90  # delivery rows of finished messages
    keep_raw_days: int = 30  # raw bytes of processed mail that is not an archived post
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")  # IPs/CIDRs that may scrape
    metrics_token: str = ""  # or a bearer token
    log_format: str = "text"  # text | json

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url == "embedded"

    @property
    def secret_key(self) -> bytes:
        """The newest key, used for signing; older ones only verify."""
        return self.secret_keys[0].encode()


# name -> (field, converter); converters raise ValueError with a hint.
def _int(lo: int, hi: int):
    def convert(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"must be a whole number, got {value!r}") from None
        if not lo <= number <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {number}")
        return number

    return convert


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be 1 or 0 (true/false), got {value!r}")


def _rate(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"must be messages per second such as 50 or 0.5, got {value!r}") from None
    if number < 0:
        raise ValueError(f"must be 0 (no limit) or more, got {value!r}")
    return number


def _window(value: str) -> tuple[int, float] | None:
    if not value.strip():
        return None
    count, slash, seconds = value.partition("/")
    try:
        result = (int(count), float(seconds))
    except ValueError:
        result = (0, 0.0)
    if not slash or result[0] <= 0 or result[1] <= 0:
        raise ValueError(f"must be COUNT/SECONDS such as 10000/3600, got {value!r}")
    return result


def _domain_rates(value: str) -> dict[str, float]:
    rates: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in value.split(","))):
        domain, eq, rate = item.partition("=")
        try:
            rates[domain.strip().lower()] = float(rate)
        except ValueError:
            eq = ""
        if not eq or not domain.strip() or rates.get(domain.strip().lower(), 0) <= 0:
            raise ValueError(f"must be DOMAIN=RATE pairs such as outlook.com=5,hotmail.com=5, "
                             f"got {value!r}")
    return rates


def _str(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _database_url(value: str) -> str:
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
    if not (value.startswith("sqlite:///") or value.startswith("postgresql+psycopg://")):
        raise ValueError(
            "must be sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB, "
            f"got {value!r}"
        )
    return value


def _broker_url(value: str) -> str:
    if value == "embedded" or value.split("://", 1)[0] in {"redis", "rediss", "amqp", "amqps"}:
        if value != "embedded" and "://" not in value:
            raise ValueError(f"must be embedded, redis://HOST:PORT/DB or amqp://..., got {value!r}")
        return value
    raise ValueError(f"must be embedded, redis://HOST:PORT/DB or amqp://USER:PW@HOST:PORT/, "
                     f"got {value!r}")


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"must be http(s)://HOST[:PORT][/PATH], got {value!r}")
    return value.rstrip("/")


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"must be an IANA zone such as America/Los_Angeles, got {value!r}") from None
    return value


def _synchronous(value: str) -> str:
    if value.upper() not in {"FULL", "NORMAL", "EXTRA"}:
        raise ValueError(f"must be FULL, EXTRA or NORMAL, got {value!r}")
    return value.upper()


def _namespace(value: str) -> str:
    if not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"must be letters, digits, - and _, got {value!r}")
    return value


_DNS_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def _dns_name(value: str) -> str:
    name = value.strip().lower()
    if name and not _DNS_NAME.fullmatch(name):
        raise ValueError("must be DNS labels (letters, digits, hyphens, dots) such as "
                         f"citymail-rsa-202611, got {value!r}")
    return name


def _networks(value: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in value.split(",") if x.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError("must be IP addresses or networks separated by commas, such as "
                             f"127.0.0.1,10.0.0.0/8, got {item!r}") from None
    return items


def _addresses(value: str) -> tuple[str, ...]:
    items = tuple(x.strip().lower() for x in value.split(",") if x.strip())
    bad = [x for x in items if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+", x)]
    if bad:
        raise ValueError("must be email addresses separated by commas, such as "
                         f"it@cacities.org,clerk@cacities.org, got {bad[0]!r}")
    return items


def _resolver(value: str) -> str:
    text = value.strip().lower()
    if text in ("", "off"):
        return text
    for item in text.split(","):
        try:
            ipaddress.ip_address(item.strip())
        except ValueError:
            raise ValueError("must be empty (the system resolver), off, or nameserver IP "
                             f"addresses such as 127.0.0.53, got {item.strip()!r}") from None
    return text


def _key_file(value: str) -> Path | None:
    if not value.strip():
        return None
    path = Path(value.strip())
    if not path.is_file():
        raise ValueError(f"must name a private key file, and {str(path)!r} is not one; "
                         "make a key with: citymail dkim keygen")
    return path


VARIABLES: dict[str, tuple[str, object]] = {
    "CITYMAIL_DATABASE_URL": ("database_url", _database_url),
    "CITYMAIL_BROKER_URL": ("broker_url", _broker_url),
    "CITYMAIL_SMTP_HOST": ("smtp_host", _str),
    "CITYMAIL_SMTP_PORT": ("smtp_port", _int(0, 65535)),
    "CITYMAIL_RELAY_URL": ("relay_url", _str),
    "CITYMAIL_WEB_HOST": ("web_host", _str),
    "CITYMAIL_WEB_PORT": ("web_port", _int(0, 65535)),
    "CITYMAIL_LIST_DOMAIN": ("list_domain", lambda v: _str(v).lower()),
    "CITYMAIL_BASE_URL": ("base_url", _base_url),
    "CITYMAIL_TIMEZONE": ("timezone", _timezone),
    "CITYMAIL_RELAY_MAX_RCPT": ("relay_max_rcpt", _int(1, 10_000)),
    "CITYMAIL_MAX_MESSAGE_SIZE": ("max_message_size", _int(1024, 1024**3)),
    "CITYMAIL_VAR_DIR": ("var_dir", lambda v: Path(_str(v))),
    "CITYMAIL_QUEUE_NAMESPACE": ("queue_namespace", _namespace),
    "CITYMAIL_WORKER_THREADS": ("worker_threads", _int(1, 256)),
    "CITYMAIL_CHUNK_SIZE": ("chunk_size", _int(1, 10_000)),
    "CITYMAIL_SQLITE_SYNCHRONOUS": ("sqlite_synchronous", _synchronous),
    "CITYMAIL_WORKER_LEASE": ("worker_lease", _int(2, 3600)),
    "CITYMAIL_RATE": ("rate", _rate),
    "CITYMAIL_RETRY_BASE": ("retry_base", _int(1, 86400)),
    "CITYMAIL_GIVE_UP_HOURS": ("give_up_hours", _int(1, 24 * 30)),
    "CITYMAIL_RATE_WINDOW": ("rate_window", _window),
    "CITYMAIL_DOMAIN_RATES": ("domain_rates", _domain_rates),
    "CITYMAIL_TRUSTED_AUTHSERV_IDS": ("trusted_authserv_ids", lambda v: tuple(
        x.strip().lower() for x in v.split(",") if x.strip())),
    "CITYMAIL_VERIFY_DKIM": ("verify_dkim", lambda v: _bool(v)),
    "CITYMAIL_DKIM_KEY": ("dkim_key", _key_file),
    "CITYMAIL_DKIM_SELECTOR": ("dkim_selector", _dns_name),
    "CITYMAIL_DKIM_DOMAIN": ("dkim_domain", _dns_name),
    "CITYMAIL_DKIM_ED25519_KEY": ("dkim_ed25519_key", _key_file),
    "CITYMAIL_DKIM_ED25519_SELECTOR": ("dkim_ed25519_selector", _dns_name),
    "CITYMAIL_TRUSTED_PROXIES": ("trusted_proxies", _networks),
    "CITYMAIL_FEED_POLL_MINUTES": ("feed_poll_minutes", _int(0, 720)),
    "CITYMAIL_ARC_SEAL": ("arc_seal", lambda v: _bool(v)),
    "CITYMAIL_ARC_AUTHSERV_ID": ("arc_authserv_id", lambda v: _str(v).lower()),
    "CITYMAIL_SITE_OWNERS": ("site_owners", _addresses),
    "CITYMAIL_DNS_RESOLVER": ("dns_resolver", _resolver),
    "CITYMAIL_KEEP_DELIVERIES_DAYS": ("keep_deliveries_days", _int(1, 36500)),
    "CITYMAIL_KEEP_RAW_DAYS": ("keep_raw_days", _int(1, 36500)),
    "CITYMAIL_METRICS_ALLOW": ("metrics_allow", _networks),
    "CITYMAIL_METRICS_TOKEN": ("metrics_token", lambda v: v.strip()),
    "CITYMAIL_LOG_FORMAT": ("log_format", lambda v: _choice(v, ("text", "json"))),
}


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value.strip().lower() not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
    return value.strip().lower()


def parse_relay(url: str) -> Relay:
    """Read ``outbox:DIR`` or ``smtp[s]://[USER:PW@]HOST:PORT[?starttls=1]``."""
    hint = f"CITYMAIL_RELAY_URL must be outbox:DIR or smtp://HOST:PORT, got {url!r}"
    if url.startswith("outbox:"):
        path = url.removeprefix("outbox:")
        if not path:
            raise SettingsError(hint)
        return Relay("outbox", path=Path(path))
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtp+starttls"} or not parts.hostname:
        raise SettingsError(hint)
    try:
        port = parts.port or 25
    except ValueError:
        raise SettingsError(hint) from None
    starttls = parts.scheme == "smtp+starttls" or "starttls=1" in parts.query
    return Relay(
        "smtp", host=parts.hostname, port=port, username=parts.username,
        password=parts.password, starttls=starttls,
    )


def _secret_keys(environ: Mapping[str, str], var_dir: Path) -> tuple[str, ...]:
    raw = environ.get("CITYMAIL_SECRET_KEY", "").strip()
    if raw:
        keys = tuple(k.strip() for k in raw.split(",") if k.strip())
        if any(len(k) < 16 for k in keys):
            raise SettingsError("CITYMAIL_SECRET_KEY: each key must be at least 16 characters; "
                                "generate one with: python3 -c 'import secrets; "
                                "print(secrets.token_urlsafe(32))'")
        return keys
    # Embedded default: one key generated on first run and kept beside the database.
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return (path.read_text().strip(),)


def load_settings(
    environ: Mapping[str, str] | None = None, *, toml_path: Path | None = None
) -> Settings:
    """Build and validate the settings from the environment (and an optional TOML file).

    The TOML file (``CITYMAIL_CONFIG``) uses the variable names without the prefix, in
    lower case; the environment wins over it.
    """
    env = dict(os.environ if environ is None else environ)
    toml_path = toml_path or (Path(env["CITYMAIL_CONFIG"]) if env.get("CITYMAIL_CONFIG") else None)
    values: dict[str, str] = {}
    if toml_path is not None:
        try:
            data = tomllib.loads(toml_path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"CITYMAIL_CONFIG {toml_path}: {exc}") from None
        for key, value in data.items():
            values["CITYMAIL_" + key.upper()] = str(value)
    values.update({k: v for k, v in env.items() if k.startswith("CITYMAIL_")})

    kwargs: dict[str, object] = {}
    for name, (attr, convert) in VARIABLES.items():
        if name in values:
            try:
                kwargs[attr] = convert(values[name])  # type: ignore[operator]
            except ValueError as exc:
                raise SettingsError(f"{name} {exc}") from None
    settings = Settings(**kwargs)  # type: ignore[arg-type]
    relay = parse_relay(settings.relay_url)
    keys = _secret_keys(values, settings.var_dir)
    return replace(settings, relay=relay, secret_keys=keys)
