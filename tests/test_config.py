"""Settings precedence: defaults < file < environment < command line."""

import argparse

import pytest

from aigc_hub.config import DEFAULT_IMAGE_MODEL, AppConfig, add_serve_args


def test_precedence(tmp_path):
    assert AppConfig.load(env={}).image_model == DEFAULT_IMAGE_MODEL
    path = tmp_path / "hub.yaml"
    path.write_text("image_model: me/from-file\nport: 9000\ndevices: {me/from-file: cpu}\n")
    from_file = AppConfig.load(path, env={})
    assert (from_file.image_model, from_file.port, from_file.devices) == ("me/from-file", 9000, {"me/from-file": "cpu"})
    env = {"AIGC_HUB_CONFIG": str(path), "AIGC_HUB_PORT": "9100", "AIGC_HUB_EXTRA_MODELS": "a/b,c/d"}
    from_env = AppConfig.load(env=env)
    assert (from_env.image_model, from_env.port, from_env.extra_models) == ("me/from-file", 9100, ["a/b", "c/d"])
    args = add_serve_args(argparse.ArgumentParser()).parse_args(
        ["--port", "9200", "--image-model", "me/cli", "--device", "me/cli=cuda:1", "--no-preload"])
    final = from_env.apply_args(args)
    assert (final.port, final.image_model, final.preload) == (9200, "me/cli", False)
    assert final.devices["me/cli"] == "cuda:1"


def test_bad_config_files(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("imagemodel: typo\n")
    with pytest.raises(ValueError, match="unknown settings"):
        AppConfig.load(path, env={})
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        AppConfig.load(path, env={})
