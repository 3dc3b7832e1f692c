"""A new user's install: every pin installs on the oldest Python the project claims, and
the preflight says in one line what is missing and what runs without it."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from autograder import preflight
from autograder.course import REPO


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line
                and not line.startswith("#"))


def test_every_pin_supports_the_oldest_claimed_python():
    """pip refuses a release whose Requires-Python excludes the interpreter (soupsieve 4.1.2
    needs 3.11.5: Debian 12's python3 is 3.11.2, and pip gave up after 20 minutes)."""
    oldest = ".".join(map(str, preflight.oldest_python())) + ".0"
    refused, checked = [], 0
    for name, version in pins().items():
        try:
            found = distribution(name)
        except PackageNotFoundError:
            continue
        checked += 1
        needs = found.metadata.get("Requires-Python")
        if found.version.split("+")[0] != version:
            refused.append(f"{name}: {found.version} installed, {version} pinned (make "
                           f"builds .venv again when constraints.txt changes)")
        elif needs and not SpecifierSet(needs).contains(oldest):
            refused.append(f"{name}=={version} needs Python {needs}")
    assert checked > 50 and not refused, refused


def test_the_oldest_python_is_the_one_pyproject_claims():
    claimed = re.search(r'requires-python = ">=(\d+)\.(\d+)"',
                        (REPO / "pyproject.toml").read_text())
    assert preflight.oldest_python() == (int(claimed[1]), int(claimed[2]))


def test_an_old_python_is_named_in_one_line():
    problem = preflight.python_problem((3, 10, 12), (3, 11))
    assert "Python 3.10.12" in problem and "3.11 or newer" in problem and "\n" not in problem
    assert preflight.python_problem((3, 11, 2), (3, 11)) is None


def run_preflight(**user) -> list[str]:
    done = subprocess.run([sys.executable, str(REPO / "autograder" / "preflight.py")],
                          capture_output=True, text=True, timeout=120, **user)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the preflight as another user: needs root")
def test_preflight_says_what_runs_as_an_ordinary_user_and_as_root():
    python = "/usr/bin/python3"  # readable by every user, unlike a venv under /root
    if not os.path.exists(python):
        pytest.skip("no system python3 to run as another user")
    # A copy every account can read: the checkout may be closed (make hub closes it).
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "autograder" / "preflight.py"
        copy.parent.mkdir()
        shutil.copy(REPO / "autograder" / "preflight.py", copy)
        shutil.copy(REPO / "pyproject.toml", folder)  # the Python it claims
        for path in (Path(folder), copy.parent, copy, Path(folder) / "pyproject.toml"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        done = subprocess.run([python, str(copy)], capture_output=True, text=True,
                              timeout=120, user="nobody", cwd="/")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("preflight: not root, so grading runs in a DEGRADED sandbox")
    as_root = run_preflight()
    expected = "fully isolated" if shutil.which("bwrap") else "bubblewrap is missing"
    assert expected in as_root[0]
    assert all(line.startswith("preflight: ") for line in lines + as_root)


@pytest.mark.slow
def test_a_virtualenv_reached_through_a_link_grades_and_a_failed_start_says_why(tmp_path):
    """bubblewrap binds real paths: the interpreter is handed over by its folder's real
    path. And when the fork server cannot start, the error carries its last words."""
    linked = tmp_path / "venv-link"
    linked.symlink_to(Path(sys.prefix))
    python = linked / "bin" / Path(sys.executable).name
    solution = REPO / "solutions" / "nn_from_scratch" / "nn_from_scratch.ipynb"
    done = subprocess.run([str(python), "-m", "autograder", "grade", str(solution),
                           "--assignment", "nn_from_scratch", "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    graded = json.loads(done.stdout)
    assert graded["score"] == graded["max_score"] > 0

    broken = subprocess.run([sys.executable, "-c", (
        "import sys; from autograder.engine import launch\n"
        "sys.executable = '/nonexistent/bin/python'\n"
        "try:\n    launch.ForkServer().workdir(1 << 20)\n"
        "except OSError as error:\n    print(error)")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "/nonexistent" in broken.stdout, broken.stdout + broken.stderr
