"""Settings precedence: defaults < file < environment < command line."""

import argparse

import pytest

from aigc_hub.config import AppConfig, add_serve_args
from aigc_hub.families import TASKS


def test_precedence(tmp_path):
    assert AppConfig.load(env={}).model_for("image") == TASKS["image"].default_model
    path = tmp_path / "hub.yaml"
    path.write_text("image_model: me/from-file\nport: 9000\ndevices: {me/from-file: cpu}\n")
    from_file = AppConfig.load(path, env={})
    assert (from_file.models["image"], from_file.port) == ("me/from-file", 9000)
    assert from_file.devices == {"me/from-file": "cpu"}
    env = {"AIGC_HUB_CONFIG": str(path), "AIGC_HUB_PORT": "9100", "AIGC_HUB_EXTRA_MODELS": "a/b,c/d"}
    from_env = AppConfig.load(env=env)
    assert (from_env.models["image"], from_env.port, from_env.extra_models) == ("me/from-file", 9100, ["a/b", "c/d"])
    args = add_serve_args(argparse.ArgumentParser()).parse_args(
        ["--port", "9200", "--image-model", "me/cli", "--device", "me/cli=cuda:1", "--no-preload"])
    final = from_env.apply_args(args)
    assert (final.port, final.models["image"], final.preload) == (9200, "me/cli", False)
    assert final.devices["me/cli"] == "cuda:1"


def test_bad_config_files(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("imagemodel: typo\n")
    with pytest.raises(ValueError, match="unknown settings"):
        AppConfig.load(path, env={})
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        AppConfig.load(path, env={})


def test_gradio_variables_sit_below_aigc_hub_ones():
    env = {"GRADIO_SERVER_PORT": "9300", "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_ROOT_PATH": "/aigc"}
    config = AppConfig.load(env=env)
    assert (config.port, config.host, config.root_path) == (9300, "0.0.0.0", "/aigc")
    assert AppConfig.load(env={**env, "AIGC_HUB_PORT": "9400"}).port == 9400


def test_tabs_and_model_settings_come_from_the_task_table(tmp_path):
    assert AppConfig.load(env={}).tabs == [*TASKS, "train", "models"]
    args = add_serve_args(argparse.ArgumentParser()).parse_args(
        [f"--{task}-model" if i % 2 == 0 else f"me/{task}" for task in TASKS for i in range(2)])
    assert AppConfig.load(env={}).apply_args(args).models == {task: f"me/{task}" for task in TASKS}
    env = {f"AIGC_HUB_{task.upper()}_MODEL": f"env/{task}" for task in TASKS}
    assert AppConfig.load(env=env).models == {task: f"env/{task}" for task in TASKS}
    args = add_serve_args(argparse.ArgumentParser()).parse_args(["--device", "cpu"])
    assert AppConfig.load(env={}).apply_args(args).devices == {"*": "cpu"}, "a bare device places every model"
    with pytest.raises(ValueError, match="unknown tab"):
        AppConfig.of(tabs=["painting"])
    with pytest.raises(ValueError, match="models must map tasks"):
        AppConfig.of(models="me/a-string")


def test_batching_settings_and_what_the_lanes_admit():
    from aigc_hub.services import ModelRegistry
    from aigc_hub.ui.common import AppContext

    default = AppConfig.load(env={})
    assert (default.batching, default.max_batch, default.batch_window_ms) == (True, 64, 0)
    assert AppConfig.load(env={"AIGC_HUB_BATCHING": "0"}).batching is False
    args = add_serve_args(argparse.ArgumentParser()).parse_args(["--no-batching", "--max-batch", "8"])
    off = AppConfig.load(env={}).apply_args(args)
    assert (off.batching, off.max_batch) == (False, 8)
    with pytest.raises(ValueError, match="batch_window_ms"):
        AppConfig.load(env={"AIGC_HUB_BATCH_WINDOW_MS": "-5"})
    with pytest.raises(ValueError, match="max_batch"):
        AppConfig.of(max_batch=0)
    # Batching on: a lane lets max_batch requests in flight so they can meet; off: lane_concurrency.
    assert AppContext(AppConfig.of(max_batch=16), ModelRegistry()).lanes.slots == 16
    assert AppContext(AppConfig.of(batching=False), ModelRegistry()).lanes.slots == 2


def test_api_keys_and_mcp_come_from_the_environment_or_the_command_line():
    from aigc_hub.errors import ConfigError

    config = AppConfig.load(env={"AIGC_HUB_API_KEYS": "key-one-123,key-two-456", "AIGC_HUB_MCP": "1"})
    assert config.api_keys == ["key-one-123", "key-two-456"] and config.mcp
    args = add_serve_args(argparse.ArgumentParser()).parse_args(["--api-key", "cli-key-789", "--mcp"])
    final = AppConfig.load(env={}).apply_args(args)
    assert final.api_keys == ["cli-key-789"] and final.mcp
    for bad in (["short"], [" spaced-key-1 "], [7]):
        with pytest.raises(ConfigError, match="api_keys"):
            AppConfig.of(api_keys=bad)


def test_a_share_link_or_another_address_without_a_key_is_warned_of():
    from aigc_hub.ui.app import exposure_warning

    assert exposure_warning(AppConfig.of()) is None
    assert "on a public share link without an API key" in exposure_warning(AppConfig.of(share=True))
    assert "on 0.0.0.0 without an API key" in exposure_warning(AppConfig.of(host="0.0.0.0"))
    assert exposure_warning(AppConfig.of(share=True, api_keys=["key-one-123"])) is None


def test_serving_beyond_loopback_without_a_key_warns(launched, capsys):
    launched(host="0.0.0.0", tabs=["models"], preload=False)
    assert "without an API key" in capsys.readouterr().err
    launched(host="0.0.0.0", tabs=["models"], preload=False, api_keys=["key-one-123"])
    assert "without an API key" not in capsys.readouterr().err


def test_serve_refuses_a_busy_port_and_a_model_no_tab_can_open_before_loading(tmp_hub):
    import socket

    from aigc_hub.errors import ConfigError
    from aigc_hub.serve_checks import banner, before_loading
    from conftest import free_port

    port = free_port()
    before_loading(AppConfig.of(port=port))  # the starters, a free port
    with pytest.raises(ConfigError, match="--image-model nope/nope: no such model"):
        before_loading(AppConfig.of(port=port, image_model="nope/nope"))
    with pytest.raises(ConfigError, match="--image-model aigc-hub/gpt-tinyshakespeare: that is a text model"):
        before_loading(AppConfig.of(port=port, image_model="aigc-hub/gpt-tinyshakespeare"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use: choose another with --port N"):
            before_loading(AppConfig.of(port=port))
    said = banner(AppConfig.of(port=port), f"http://127.0.0.1:{port}/", None)
    assert "--share" in said and "share=True" not in said and f"http://127.0.0.1:{port}/v1" in said
