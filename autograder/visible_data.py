"""The data the release ships next to each notebook: the visible cases and what the checks
expect of them, computed here once (`make release`), so that the student kit needs no
reference, no case generator and no seed.

The sandbox gets the same file with the examples alone (`examples_bytes`): the notebook's
cells load their data from it, and nothing in it says what any part should return.
"""

import functools
import importlib
from pathlib import Path

from . import references
from .kit import visible
from .references.graded import COMPUTED

VISIBLE_SEED = 0  # the visible cases' seed; the hidden ones are drawn fresh per submission


def _examples(name: str) -> dict:
    module = importlib.import_module(f".references.{name}", __package__)
    return {example: make() for example, make in module.EXAMPLES.items()}


def shipped(name: str) -> visible.Shipped:
    """The visible cases of assignment name, with autograd's outputs and every known
    mistake's outputs on each."""
    parts = {}
    for part in references.get(name).parts:
        parts[part.id] = [
            visible.ShippedCase(case, COMPUTED.reference(part, case),
                                tuple((known.recognised(), tuple(candidates))
                                      for known, candidates in COMPUTED.mistakes(part, case)))
            for case in part.cases("visible", VISIBLE_SEED)]
    return visible.Shipped(name, _examples(name), parts)


def release_bytes(name: str) -> bytes:
    """The release file of assignment name."""
    return visible.dump(shipped(name))


@functools.cache
def examples_bytes(name: str) -> bytes:
    """The file as a sandbox gets it: the examples alone, no case and no expectation."""
    return visible.dump(visible.Shipped(name, _examples(name), {}))


def after_generate_assignment(assignment: str, student: str, notebooks: list[str]) -> None:
    """nbgrader's `GenerateAssignment.post_convert_hook`: write the file next to the
    notebooks nbgrader just released, so that `nbgrader generate_assignment` (the command,
    the formgrader's button, `make release`) ships it. nbgrader only logs a hook's exception,
    so a failure here ends the command instead, with its reason on one line."""
    if not notebooks:
        return
    source = Path(notebooks[0]).resolve().parent
    name = source.name
    if name not in references.ASSIGNMENTS:
        return
    # The release folder: of the course's folders (source/ aside) that hold this
    # assignment's notebooks at their top level, the one nbgrader has just written to
    # (solutions/ holds them too).
    root = source.parent.parent
    written = [((folder / name / Path(notebooks[0]).name).stat().st_mtime_ns, folder / name)
               for folder in root.iterdir() if folder.is_dir() and folder != source.parent
               and all((folder / name / Path(n).name).is_file() for n in notebooks)]
    try:
        if not written:
            raise FileNotFoundError(f"no release folder of {name} under {root}")
        (max(written)[1] / visible.FILE).write_bytes(release_bytes(name))
    except Exception as error:
        raise SystemExit(f"backprop-lab: the visible checks' data of {name} could not be "
                         f"written: {error}") from None
