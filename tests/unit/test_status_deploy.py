"""The example deployment files say what citymail accepts."""

from __future__ import annotations

import re

from helpers import ROOT

from mailer.settings import VARIABLES, load_settings

SYSTEMD = ROOT / "deploy" / "systemd"


def environment_file() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (SYSTEMD / "citymail.env.example").read_text()
             .splitlines() if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_the_example_environment_file_is_valid_settings(tmp_path) -> None:
    env = environment_file()
    unknown = [k for k in env if k.startswith("CITYMAIL_") and k not in VARIABLES
               and k != "CITYMAIL_SECRET_KEY"]
    assert unknown == []
    settings = load_settings({**env, "CITYMAIL_VAR_DIR": str(tmp_path)})
    assert settings.broker_url.startswith("amqp://")
    assert settings.log_format == "json"
    assert "10.0.0.0/8" in settings.metrics_allow


def test_units_run_the_documented_commands_with_the_environment_file() -> None:
    serve = (SYSTEMD / "citymail-serve.service").read_text()
    worker = (SYSTEMD / "citymail-worker@.service").read_text()
    assert "citymail serve --no-workers" in serve
    found = re.search(r"citymail worker --processes \$\{(\w+)\} --threads \$\{(\w+)\}", worker)
    assert found is not None
    assert set(found.groups()) <= set(environment_file())
    for unit in (serve, worker):
        assert "EnvironmentFile=/etc/citymail/citymail.env" in unit
        assert "KillSignal=SIGTERM" in unit
