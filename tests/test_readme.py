"""The README's two commands are the ones users and CI run."""

import re

from conftest import REPO


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    install_and_run, test_command = blocks[0].strip(), blocks[1].strip()
    assert install_and_run == "pip install -r requirements.txt && python app.py"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_torch_is_pinned():
    assert "torch==2.13.0" in (REPO / "requirements.txt").read_text().splitlines()
