"""The README's settings tables are generated from the one Settings definition, and every
MOORAGE_* variable the README names is one the code reads."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from moorage.cli.settings import markdown_tables, update_readme
from moorage.config import Settings, documented

README = Path(__file__).resolve().parents[2] / "README.md"
# Read by the code but not Settings fields: the config file itself, the short aliases of the
# scale-out URLs, and the test suite's backend switch.
OTHER_VARIABLES = {"MOORAGE_CONFIG", "MOORAGE_DATABASE", "MOORAGE_STORAGE", "MOORAGE_TEST_BACKEND"}


def test_readme_settings_tables_are_the_generated_ones():
    text = README.read_text()
    assert update_readme(text) == text, (
        "README.md settings tables differ from Settings: run "
        "`.venv/bin/moorage settings --update README.md`"
    )
    for slug in markdown_tables():
        assert f"<!-- settings:begin {slug} -->" in text, slug


def test_every_setting_is_documented_once():
    docs = documented()
    assert [d.name for d in docs] == [f.name for f in fields(Settings)]
    assert all(d.description for d in docs), [d.name for d in docs if not d.description]
    tables = "".join(markdown_tables().values())
    for d in docs:
        assert tables.count(f"`{d.env}`") == 1, d.env
    for name in ("token_ttl", "log_level", "shutdown_timeout", "token_realm", "upload_ttl"):
        assert f"`MOORAGE_{name.upper()}`" in README.read_text(), name


def test_readme_names_no_variable_the_code_does_not_read():
    known = {f"MOORAGE_{f.name.upper()}" for f in fields(Settings)} | OTHER_VARIABLES
    named = set(re.findall(r"MOORAGE_[A-Z0-9_]*[A-Z0-9]", README.read_text()))
    assert named - known == set(), "README names settings that do not exist"
