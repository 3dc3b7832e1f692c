"""The student releases and answer keys are generated from source/ and leak nothing."""

import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from safetensors.torch import load

from autograder.course import REPO, assignment_names, generate_release
from autograder.kit import visible

pytestmark = pytest.mark.slow

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "hidden=True")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """A copy of the course with assignments/ and solutions/ regenerated from source/."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(REPO / "source", root / "source")
    shutil.copy(REPO / "nbgrader_config.py", root)
    generate_release(root)
    return root


@pytest.mark.parametrize("folder", ["assignments", "solutions"])
def test_committed_files_match_a_fresh_generation(regenerated, folder):
    committed = sorted(p.relative_to(REPO / folder) for p in (REPO / folder).rglob("*")
                       if p.is_file())
    fresh = sorted(p.relative_to(regenerated / folder)
                   for p in (regenerated / folder).rglob("*") if p.is_file())
    assert committed == fresh, f"{folder}/ holds other files than source/ generates"
    for path in committed:
        ours, theirs = REPO / folder / path, regenerated / folder / path
        same = same_data(ours, theirs) if path.suffix == ".safetensors" \
            else ours.read_bytes() == theirs.read_bytes()
        assert same, f"{folder}/{path} drifted from source/ or from the grader's references: " \
                     f"run `make release` and commit the result"


def same_data(ours: Path, theirs: Path) -> bool:
    """The same layout and tensors (to the last bits another machine's float64 may differ)."""
    mine, fresh = visible.loads(ours.read_bytes()), visible.loads(theirs.read_bytes())
    return visible.dump(mine) == visible.dump(fresh) or _close(load(ours.read_bytes()),
                                                                 load(theirs.read_bytes()))


def _close(mine: dict, fresh: dict) -> bool:
    return mine.keys() == fresh.keys() and all(
        mine[k].dtype == fresh[k].dtype and mine[k].shape == fresh[k].shape
        and torch.allclose(mine[k].double(), fresh[k].double(), rtol=1e-12, atol=1e-15,
                           equal_nan=True) for k in mine)


def test_every_assignment_is_released():
    assert assignment_names() == sorted(p.name for p in (REPO / "assignments").iterdir())


def hidden_regions(cell) -> list[str]:
    """The lines of a source cell between solution or hidden-test markers."""
    lines, inside = [], False
    for line in cell.source.splitlines():
        if "### BEGIN" in line or "### END" in line:
            inside = "### BEGIN" in line
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


@pytest.mark.parametrize("assignment", assignment_names())
def test_release_holds_no_solution_or_hidden_test(assignment):
    released = [p for p in (REPO / "assignments" / assignment).rglob("*") if p.is_file()]
    text = "\n".join(p.read_text() for p in released if p.suffix == ".ipynb")
    for marker in MARKERS:
        assert marker not in text
    source = nbformat.read(REPO / "source" / assignment / f"{assignment}.ipynb", 4)
    release = nbformat.read(REPO / "assignments" / assignment / f"{assignment}.ipynb", 4)
    released_cells = {c.metadata["nbgrader"]["grade_id"]: c.source for c in release.cells
                      if "nbgrader" in c.metadata}
    regions = {c.metadata["nbgrader"]["grade_id"]: hidden_regions(c) for c in source.cells
               if "nbgrader" in c.metadata}
    assert sum(map(len, regions.values())) > 0
    for cell, lines in regions.items():
        leaked = [line for line in lines if line in released_cells[cell]]
        assert not leaked, f"the release of {assignment} shows in {cell}: {leaked}"
