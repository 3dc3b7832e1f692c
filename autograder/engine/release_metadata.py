"""A submitted notebook's nbgrader metadata, rebuilt from the release before anything reads it.

The student's notebook file is the student's: every field of it can be edited, nbgrader's
metadata included (a test cell worth 100 points, a solution cell turned into a test, duplicate
or unknown grade ids, invalid cell ids, `nbformat_minor: 99`, HTML in a grade id). None of
that may gain a point or stop grading or feedback. `rebuild_from_release` gives every cell the
nbgrader metadata that the release's cell of the same grade id has (grade ids are what
nbgrader matches cells by; where a grade id occurs more than once, the last cell keeps it,
as nbgrader's DeduplicateIds does), and takes it from every other cell; the cell types and
the sources of locked cells are the release's too, and so are the notebook's format version
and metadata. Cell ids are made valid and unique, and lone surrogates (which no encoder
accepts) are replaced. What was restored comes back as one note for the student.

It is called where the engine reads a notebook to grade it (`runner.grade_data`), where it
writes the autograded notebook that feedback renders (`runner.write_autograded`), and where
nbgrader's own autograde reads a submission (`nbgrader_grading.SubmissionExporter`).
"""

import copy
import functools
import json
import re
from pathlib import Path

from ..course import REPO

CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what nbformat 4.5 allows
CELL_TYPES = ("code", "markdown", "raw")
NOT_A_SURROGATE = "\ufffd"
# The nbgrader metadata that decides grading (a change to any is noted; the checksum that
# nbgrader keeps beside them is restored too, silently: the answer key has none).
GRADING_KEYS = ("grade", "solution", "locked", "task", "points", "grade_id")


def rebuild_from_release(notebook: dict, release: dict) -> str | None:
    """Rebuild, in place, the submitted notebook (nbformat 4 JSON as a dict, with a list of
    cells that are dicts) from the release's: each cell's nbgrader metadata (a cell matched
    by grade id gets its release cell's metadata, type, id, and source if locked; any other
    cell has none), valid unique cell ids, the format version and the notebook's metadata
    (replaced silently: Jupyter itself changes it); nothing nbformat's schema does not know.
    Returns a note saying what was restored, or None when nothing was."""
    by_grade_id = {_grade_id(cell): cell for cell in release["cells"] if _grade_id(cell)}
    last_of = {_grade_id(cell): index for index, cell in enumerate(notebook["cells"])
               if isinstance(_grade_id(cell), str)}
    restored: list[str] = []
    for index, cell in enumerate(notebook["cells"]):
        claimed = _grade_id(cell)
        original = by_grade_id.get(claimed) if last_of.get(claimed) == index else None
        submitted = _metadata(cell).get("nbgrader")
        _plain_cell(cell, original)
        if original is None:
            if submitted is not None:
                restored.append("nbgrader metadata on a cell the release does not grade")
            continue
        if not isinstance(submitted, dict) or cell["cell_type"] != original["cell_type"] or any(
                submitted.get(key) != original["metadata"]["nbgrader"].get(key)
                for key in GRADING_KEYS):
            restored.append(f"the metadata of cell {claimed}")
        _set_type(cell, original["cell_type"])
        if original["metadata"]["nbgrader"].get("locked") \
                and cell["source"] != "".join(original["source"]):
            cell["source"] = "".join(original["source"])
            restored.append(f"the locked cell {claimed}")
    _unique_ids(notebook["cells"])
    kept = {"cells", "metadata", "nbformat", "nbformat_minor"}
    if set(notebook) != kept or any(notebook.get(key) != release[key]
                                    for key in ("nbformat", "nbformat_minor")):
        restored.append("the notebook's format version")
    for key in set(notebook) - kept:
        del notebook[key]
    for key in kept - {"cells"}:
        notebook[key] = copy.deepcopy(release[key])
    if not restored:
        return None
    shown = sorted(set(restored))
    return (f"This notebook's grading metadata had been changed, so it was restored from the "
            f"assignment as released ({'; '.join(shown[:4])}"
            f"{'; ...' if len(shown) > 4 else ''}): only the release's cells and points count.")


def rebuilt_bytes(data: bytes, assignment: str) -> tuple[bytes, str | None]:
    """A notebook's JSON bytes rebuilt from the grader's release of assignment
    (`release_of`), and the note of what was restored."""
    notebook = json.loads(data)
    note = rebuild_from_release(notebook, release_of(assignment))
    return json.dumps(notebook, ensure_ascii=False).encode(), note


@functools.cache
def _release_json(path: Path) -> str:
    return path.read_text()


def release_of(assignment: str, folder: Path = REPO / "assignments") -> dict:
    """The release notebook of assignment, as `make release` writes it (a fresh copy)."""
    return json.loads(_release_json(folder / assignment / f"{assignment}.ipynb"))


def _metadata(cell) -> dict:
    """A cell's metadata, or {} where a student made it something else (a list, say)."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _grade_id(cell) -> object:
    grading = _metadata(cell).get("nbgrader")
    grade_id = grading.get("grade_id") if isinstance(grading, dict) else None
    return grade_id if isinstance(grade_id, str) else None  # a list, say, names no cell


def _plain_cell(cell: dict, original: dict | None) -> None:
    """A cell nbformat 4 accepts: a known type, text source, no outputs, only the keys of
    its type, no lone surrogate; metadata: the release cell's where it matched one, else
    only its tags (a list of strings)."""
    source = cell.get("source")
    source = source if isinstance(source, str) else "".join(source) \
        if isinstance(source, list) and all(isinstance(line, str) for line in source) else ""
    tags = _metadata(cell).get("tags")
    cell_id = cell.get("id")
    cell_type = cell.get("cell_type") if cell.get("cell_type") in CELL_TYPES else "raw"
    attachments = cell.get("attachments")
    cell.clear()
    cell.update(cell_type=cell_type, id=original.get("id") if original else cell_id,
                source=_without_surrogates(source))
    if cell_type != "code" and _is_attachments(attachments):  # images in a written answer
        cell["attachments"] = attachments
    if original is not None:
        cell["metadata"] = copy.deepcopy(original["metadata"])
    else:
        valid_tags = isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
        cell["metadata"] = {"tags": _without_surrogates(tags)} if valid_tags and tags else {}
    _set_type(cell, cell_type)


def _is_attachments(value) -> bool:
    """nbformat's attachments: {name: {mime type: text or lines}}."""
    return isinstance(value, dict) and all(
        isinstance(bundle, dict) and all(
            isinstance(data, str) or isinstance(data, list)
            and all(isinstance(line, str) for line in data) for data in bundle.values())
        for bundle in value.values()) and value == _without_surrogates(value)


def _set_type(cell: dict, cell_type: str) -> None:
    cell["cell_type"] = cell_type
    for key in ("outputs", "execution_count") + (("attachments",) if cell_type == "code"
                                                  else ()):
        cell.pop(key, None)
    if cell_type == "code":
        cell["outputs"], cell["execution_count"] = [], None


def _unique_ids(cells: list[dict]) -> None:
    """Every cell id valid and unique: a cell matched to a release cell keeps that cell's
    id, any other valid id its first holder; the rest get a fresh one."""
    reserved = {cell["id"] for cell in cells if "nbgrader" in cell["metadata"]}
    seen: set = set()
    for index, cell in enumerate(cells):
        cell_id = cell["id"]
        matched = "nbgrader" in cell["metadata"]
        if not (isinstance(cell_id, str) and CELL_ID.match(cell_id) and cell_id not in seen
                and (matched or cell_id not in reserved)):
            cell_id = f"cell-{index}"
            while cell_id in seen or cell_id in reserved:
                cell_id += "-"
        cell["id"] = cell_id
        seen.add(cell_id)


def _without_surrogates(value):
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", NOT_A_SURROGATE, value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value
