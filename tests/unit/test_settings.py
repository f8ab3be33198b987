from pathlib import Path

import pytest

from mailer.errors import SettingsError
from mailer.settings import load_settings


def test_defaults_match_the_design(tmp_path: Path) -> None:
    s = load_settings({"CITYMAIL_VAR_DIR": str(tmp_path)})
    assert s.database_url == "sqlite:///var/citymail.db"
    assert s.broker_url == "embedded"
    assert (s.smtp_host, s.smtp_port) == ("127.0.0.1", 8025)
    assert s.relay.kind == "outbox" and s.relay.path == Path("var/outbox")
    assert (s.web_host, s.web_port) == ("127.0.0.1", 8000)
    assert s.list_domain == "lists.cacities.org"
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.timezone == "America/Los_Angeles"
    assert s.relay_max_rcpt == 100


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings({"CITYMAIL_VAR_DIR": str(tmp_path)}).secret_keys
    again = load_settings({"CITYMAIL_VAR_DIR": str(tmp_path)}).secret_keys
    assert first == again and len(first[0]) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_secret_keys_rotate_newest_first(tmp_path: Path) -> None:
    s = load_settings({"CITYMAIL_SECRET_KEY": "new-key-0123456789abc, old-key-0123456789abc",
                       "CITYMAIL_VAR_DIR": str(tmp_path)})
    assert s.secret_keys == ("new-key-0123456789abc", "old-key-0123456789abc")
    assert s.secret_key == b"new-key-0123456789abc"


@pytest.mark.parametrize(("name", "value", "hint"), [
    ("CITYMAIL_RELAY_URL", "smtp:/x", "must be outbox:DIR or smtp://HOST:PORT"),
    ("CITYMAIL_SMTP_PORT", "eighty", "must be a whole number"),
    ("CITYMAIL_SMTP_PORT", "70000", "between 0 and 65535"),
    ("CITYMAIL_DATABASE_URL", "mysql://x", "sqlite:///PATH or postgresql+psycopg://"),
    ("CITYMAIL_BROKER_URL", "kafka://x", "embedded, redis://"),
    ("CITYMAIL_TIMEZONE", "Pacific", "IANA zone"),
    ("CITYMAIL_BASE_URL", "example.org", "http(s)://"),
    ("CITYMAIL_SECRET_KEY", "short", "at least 16 characters"),
])
def test_bad_values_say_how_to_fix_them(tmp_path: Path, name: str, value: str, hint: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({name: value, "CITYMAIL_VAR_DIR": str(tmp_path)})
    assert name in str(err.value) and hint in str(err.value)


def test_smtp_relay_with_auth_and_starttls(tmp_path: Path) -> None:
    s = load_settings({"CITYMAIL_RELAY_URL": "smtp+starttls://u:p@relay.example:587",
                       "CITYMAIL_VAR_DIR": str(tmp_path)})
    assert (s.relay.kind, s.relay.host, s.relay.port) == ("smtp", "relay.example", 587)
    assert s.relay.starttls and (s.relay.username, s.relay.password) == ("u", "p")


def test_postgresql_url_gets_the_psycopg_driver(tmp_path: Path) -> None:
    s = load_settings({"CITYMAIL_DATABASE_URL": "postgresql://me@127.0.0.1/db",
                       "CITYMAIL_VAR_DIR": str(tmp_path)})
    assert s.database_url == "postgresql+psycopg://me@127.0.0.1/db"


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    conf = tmp_path / "citymail.toml"
    conf.write_text('list_domain = "lists.example.org"\nsmtp_port = 2525\n')
    s = load_settings({"CITYMAIL_CONFIG": str(conf), "CITYMAIL_SMTP_PORT": "2626",
                       "CITYMAIL_VAR_DIR": str(tmp_path)})
    assert s.list_domain == "lists.example.org" and s.smtp_port == 2626


def test_a_verb_before_init_says_run_init_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from helpers import base_env

    proc = subprocess.run([sys.executable, "-m", "citymail", "lists", "show"],
                          env=base_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0
    assert "run `citymail init`" in proc.stderr and "Traceback" not in proc.stderr
