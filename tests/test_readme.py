"""The README's two commands are the ones users and CI run."""

import re
import shlex

import pytest

from conftest import REPO


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)]
    first = blocks[0].splitlines()  # what a reader runs first: CPU torch (or not), then install and run
    assert first[-1] == "pip install -r requirements.txt && python app.py" and "whl/cpu" in first[0]
    [test_command] = [b for b in blocks if b.startswith("pip install") and "pytest" in b]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_torch_is_pinned():
    assert "torch==2.13.0" in (REPO / "requirements.txt").read_text().splitlines()


def readme_commands() -> list[str]:
    """Every `python -m aigc_hub …` line of the README's bash blocks, continuations joined, comments cut."""
    readme = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("|")[-1].strip()
            if line.startswith("python -m aigc_hub "):
                commands.append(shlex.split(line, comments=True))
    return commands


def test_every_cli_line_of_the_readme_parses_as_written():
    from aigc_hub.cli import build_parser

    commands = readme_commands()
    assert len(commands) > 15 and ["python", "-m", "aigc_hub", "list"] in commands
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv[3:])
        except SystemExit:
            raise AssertionError(f"the README's `{shlex.join(argv)}` does not parse") from None


def test_the_readme_remote_line_adds_an_entry_that_list_shows_and_remove_deletes(tmp_hub, capsys):
    from aigc_hub import cli, hub

    line = next(argv for argv in readme_commands() if argv[3:5] == ["remote", "add"])
    cli.main(line[3:])
    assert (tmp_hub / line[5] / "config.json").is_file()
    cli.main(["remote", "list"])
    assert line[5] in capsys.readouterr().out
    hub.push(hub.resolve("aigc-hub/dcgan-mnist"), "me/real-model")
    with pytest.raises(SystemExit):  # only remote entries: a model's weights are never deleted
        cli.main(["remote", "remove", "me/real-model"])
    assert "no remote entry" in capsys.readouterr().err and (tmp_hub / "me" / "real-model").is_dir()
    cli.main(["remove", line[5]])  # the general `remove` knows them too
    entry = tmp_hub / line[5]
    assert not entry.exists() and not list(entry.parent.glob(f".{entry.name}*"))  # nothing set aside is left


def test_the_fast_tier_command_uses_only_what_the_test_requirements_install():
    readme = (REPO / "README.md").read_text()
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)]
    [fast] = [b for b in blocks if b.startswith("python -m pytest") and '"not slow"' in b]
    if " -n " in fast:  # workers come from pytest-xdist
        assert any(line.startswith("pytest-xdist==")
                   for line in (REPO / "tests" / "requirements.txt").read_text().splitlines())
