"""What a fresh machine needs before `make` builds .venv, said in its first second.

Run by the Makefile with the interpreter that will make the virtualenv (`python3
autograder/preflight.py`), so it uses the standard library only. One line per finding:
the Python version (the oldest the project claims, from pyproject.toml), the venv module
(Debian ships it apart, in python3-venv), and bubblewrap, which the sandbox needs for its
full isolation as root. As root with apt, what is missing is installed (as .ci/run does);
otherwise it says what is missing and what runs without it. Exit 1 only when nothing can
run.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def oldest_python() -> tuple[int, int]:
    """The lowest Python that pyproject.toml's requires-python claims."""
    found = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)', PYPROJECT.read_text())
    return (int(found[1]), int(found[2])) if found else (3, 11)


def python_problem(version: tuple[int, ...], oldest: tuple[int, int]) -> str | None:
    if tuple(version[:2]) >= oldest:
        return None
    shown = ".".join(map(str, version[:3]))
    return (f"{sys.executable} is Python {shown}; backprop-lab needs Python "
            f"{oldest[0]}.{oldest[1]} or newer: run make with PYTHON=python3.{oldest[1]} (or "
            f"newer), installed from your distribution or python.org")


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(package: str, why: str) -> bool:
    print(f"preflight: installing {package} with apt-get ({why})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "-q", package],
                    ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False)
        if done.returncode == 0 and command[1] == "install":
            return True
    return False


def has_venv() -> bool:
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    problem = python_problem(sys.version_info, oldest_python())
    if problem:
        print(f"preflight: {problem}")
        return 1
    if not has_venv():
        package = f"python3.{sys.version_info[1]}-venv"
        if not (can_install() and apt_install(package, "python3 -m venv needs it")):
            print(f"preflight: {sys.executable} has no venv module: install {package} "
                  f"(Debian and Ubuntu ship it apart: apt-get install {package})")
            return 1
    root = os.geteuid() == 0
    if root and shutil.which("bwrap") is None and can_install():
        apt_install("bubblewrap", "the sandbox runs in it as root")
    if not root:
        print("preflight: not root, so grading runs in a DEGRADED sandbox (resource limits "
              "only: student code can read what this user can read and reach the network); "
              "for full isolation run as root with bubblewrap installed")
    elif shutil.which("bwrap") is None:
        print("preflight: bubblewrap is missing: as root, grading refuses to run without it "
              "(apt-get install bubblewrap); everything else runs")
    else:
        print("preflight: root and bubblewrap: grading runs fully isolated")
    print(f"preflight: Python {'.'.join(map(str, sys.version_info[:3]))} at {sys.executable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
