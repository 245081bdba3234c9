"""The deploy files stay true to the code: the example config is the generated one, parses,
and names every setting; the Containerfile copies paths that exist; the unit and the proxy
examples carry the settings the README promises."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

from moorage.cli.settings import EXAMPLE_SET, example_toml
from moorage.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_example_config_is_the_generated_one():
    assert (DEPLOY / "moorage.toml").read_text() == example_toml(), (
        "deploy/moorage.toml differs from Settings: run "
        "`moorage settings --example > deploy/moorage.toml`")


def test_example_config_parses_and_covers_every_setting():
    path = DEPLOY / "moorage.toml"
    text = path.read_text()
    assert tomllib.loads(text) == EXAMPLE_SET
    settings = Settings.from_env({}, config_file=path)
    assert (settings.listen, str(settings.data_dir)) == ("0.0.0.0:5000", "/var/lib/moorage")
    # Every commented-out line is itself valid: uncommented, the whole file still parses and
    # holds each setting exactly once, with a value of the setting's type.
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", text)
    values = tomllib.loads(uncommented)
    assert set(values) == {f.name for f in fields(Settings)}
    defaults = Settings()
    for name, value in values.items():
        default = getattr(defaults, name)
        if default is None or isinstance(default, Path):
            assert isinstance(value, str), name
        elif isinstance(default, float):
            assert isinstance(value, int | float) and not isinstance(value, bool), name
        else:
            assert type(value) is type(default), name


def test_containerfile_copies_paths_that_exist():
    text = (ROOT / "Containerfile").read_text()
    assert re.search(r"(?m)^FROM \S+slim", text)
    sources = [part for line in re.findall(r"(?m)^COPY (?!--from)(.+)$", text)
               for part in line.split()[:-1]]
    assert "requirements.lock" in sources and "src" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
    assert "--require-hashes -r requirements.lock" in text


def test_systemd_unit_runs_serve_with_the_config_and_reloads_with_sighup():
    text = (DEPLOY / "moorage.service").read_text()
    assert re.search(r"(?m)^ExecStart=\S+/moorage serve --config /etc/moorage/moorage.toml$", text)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=moorage",
                   "[Install]"):
        assert option in text, option


def test_proxy_examples_turn_off_limits_and_buffering():
    nginx = (DEPLOY / "nginx.conf").read_text()
    for directive in ("client_max_body_size 0;", "proxy_request_buffering off;",
                      "proxy_buffering off;", "X-Forwarded-Proto", "proxy_read_timeout"):
        assert directive in nginx, directive
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert "reverse_proxy 127.0.0.1:5000" in caddy and "flush_interval -1" in caddy
