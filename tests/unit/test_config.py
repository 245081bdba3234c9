"""Settings: the blob redirect mode, its old boolean spelling and its threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.config import Settings


def test_default_redirects_only_blobs_of_64_mib_and_more():
    settings = Settings.from_env({})
    assert settings.blob_redirect == "large"
    assert settings.redirect_min_bytes == 64 << 20


@pytest.mark.parametrize(
    ("raw", "mode", "threshold"),
    [("large", "large", 5 << 20), ("always", "always", 0), ("never", "never", None),
     ("1", "large", 5 << 20), ("true", "large", 5 << 20), ("0", "never", None),
     ("off", "never", None), ("ALWAYS", "always", 0)],
)
def test_redirect_mode_and_the_old_boolean_values(raw, mode, threshold):
    env = {"MOORAGE_BLOB_REDIRECT": raw, "MOORAGE_BLOB_REDIRECT_MIN_BYTES": str(5 << 20)}
    settings = Settings.from_env(env)
    assert settings.blob_redirect == mode
    assert settings.redirect_min_bytes == threshold


def test_config_file_boolean_still_works(tmp_path: Path):
    config = tmp_path / "moorage.toml"
    config.write_text("blob_redirect = false\n")
    assert Settings.from_env({"MOORAGE_CONFIG": str(config)}).redirect_min_bytes is None


def test_unknown_redirect_mode_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="blob_redirect must be one of large, always, never"):
        Settings.from_env({"MOORAGE_BLOB_REDIRECT": "sometimes"})


def test_negative_threshold_is_refused():
    with pytest.raises(ValueError, match="blob_redirect_min_bytes"):
        Settings.from_env({"MOORAGE_BLOB_REDIRECT_MIN_BYTES": "-1"})


def test_settings_survive_the_pipe_to_the_lean_server(tmp_path: Path):
    settings = Settings.from_env({}, data_dir=tmp_path / "d", workers=3, auth=False,
                                 admin_password="s3cret", storage_url="s3://b/p",
                                 gc_interval=12.5)
    assert Settings.from_json(settings.to_json()) == settings
