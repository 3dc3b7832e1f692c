"""The student releases and answer keys are generated from source/ and leak nothing."""

import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load

from autograder import references
from autograder.course import REPO, assignment_names, generate_release
from autograder.kit import visible
from autograder.kit.grading import agrees_with_mistake
from autograder.kit.parts import Case
from autograder.kit.tolerances import ONE_OPERATION
from autograder.visible_data import NUDGE, RELEASE_CACHE, nudged, release_bytes

pytestmark = pytest.mark.slow

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "hidden=True")


# Another machine's arithmetic, wherever `make release` ran: ATen's scalar kernels and MKL's
# reproducible path in place of this CPU's vector instructions. What the release ships must
# come out alike on every CPU that students and graders use.
ANOTHER_MACHINE = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
# Inputs, references and examples agree to rounding: far inside the tightest tolerance that
# a check applies, so that no verdict can differ.
ROUNDING = (ONE_OPERATION.rtol / 10, ONE_OPERATION.atol / 10)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """A copy of the course with assignments/ and solutions/ regenerated from source/, on
    another machine's arithmetic, computed afresh (not the run's shared release cache)."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(REPO / "source", root / "source")
    shutil.copy(REPO / "nbgrader_config.py", root)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ANOTHER_MACHINE.items():
            patch.setenv(name, value)
        patch.delenv(RELEASE_CACHE, raising=False)
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
        drift = data_differences(ours, theirs) if path.suffix == ".safetensors" \
            else [] if ours.read_bytes() == theirs.read_bytes() else ["its bytes"]
        assert not drift, f"{folder}/{path} drifted from source/ or from the grader's " \
                          f"references ({'; '.join(drift[:3])}): run `make release` and " \
                          f"commit the result"


def data_differences(ours: Path, theirs: Path) -> list[str]:
    """Where two release files would judge a student differently: their layouts (cases,
    outputs, known mistakes and how many outputs each ships), a value beyond rounding, or
    a known mistake's outputs that the kit would not recognise as each other."""
    if layout(ours) != layout(theirs):
        return ["the layout"]
    ours, theirs = ours.read_bytes(), theirs.read_bytes()
    mine, fresh = load(ours), load(theirs)
    found = [key for key, tensor in mine.items() if "/mistake/" not in key and not
             torch.allclose(tensor.double(), fresh[key].double(), *ROUNDING, equal_nan=True)]
    mine, fresh = visible.loads(ours), visible.loads(theirs)
    for part_id, cases in mine.parts.items():
        part = references.get(mine.assignment).part(part_id)
        for index, (item, again) in enumerate(zip(cases, fresh.parts[part_id], strict=True)):
            for (known, candidates), (_, others) in zip(item.mistakes, again.mistakes,
                                                        strict=True):
                found += [f"case/{part_id}/{index}/mistake/{known.mistake}/{c}"
                          for c, (candidate, other) in enumerate(zip(candidates, others,
                                                                     strict=True))
                          if not agrees_with_mistake(part, item.case, known, other, candidate)]
    return found


def test_a_nudge_moves_only_what_rounding_can_and_keeps_the_device():
    """`nudged` stands for another machine's rounding: it moves float entries by a few ulps,
    leaves whole numbers (labels, exact zeros), integer tensors and plain numbers as they
    are, and keeps each tensor on its device (two_layer_net's cases are on CUDA where there
    is one; `meta` stands for it here)."""
    values = torch.tensor([0.0, 1.0, -3.0, 0.5, -2.25, 1e-3], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    moved = nudged(Case("x", {"v": values, "labels": labels, "rate": 0.1,
                              "elsewhere": values.to("meta")})).args
    assert torch.equal(moved["v"][:3], values[:3])
    change = (moved["v"][3:] / values[3:] - 1).abs()
    assert ((change > NUDGE / 2) & (change < NUDGE * 2)).all()
    assert moved["labels"] is labels and moved["rate"] == 0.1
    assert moved["elsewhere"].device.type == "meta"


def layout(path: Path) -> str:
    with safe_open(path, "pt") as data:
        return data.metadata()["layout"]


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


def test_the_release_cache_keeps_what_a_generation_computes(tmp_path, monkeypatch):
    """Kept for the same code, the data is the very bytes that computing it gives, and a
    second generation reads them (the test suite shares one folder across its workers). A
    kept file that is not whole is computed again; a folder that is not this user's alone
    is passed by."""
    monkeypatch.setenv(RELEASE_CACHE, str(tmp_path))
    computed = release_bytes("two_layer_net")
    [kept] = tmp_path.glob("two_layer_net-*.safetensors")
    assert kept.read_bytes() == computed
    monkeypatch.delenv(RELEASE_CACHE)
    assert release_bytes("two_layer_net") == computed
    monkeypatch.setenv(RELEASE_CACHE, str(tmp_path))
    kept.write_bytes(computed[:-1])  # cut short
    assert release_bytes("two_layer_net") == computed == kept.read_bytes()
    kept.unlink()
    kept.symlink_to(tmp_path / "planted")
    (tmp_path / "planted").write_bytes(visible.dump(visible.Shipped("two_layer_net", {}, {})))
    assert release_bytes("two_layer_net") == computed and not kept.is_symlink()
    tmp_path.chmod(0o777)  # anyone could plant a file: not used
    kept.write_bytes(b"planted")
    assert release_bytes("two_layer_net") == computed and kept.read_bytes() == b"planted"
    monkeypatch.setenv(RELEASE_CACHE, str(tmp_path / "not a folder"))
    assert release_bytes("two_layer_net") == computed
