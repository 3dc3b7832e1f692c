"""Grade the blind corpus (bench/blind_corpus/) and print issue 27's truth figures.

    .venv/bin/python bench/blind_corpus.py                 # every submission, fresh seeds
    .venv/bin/python bench/blind_corpus.py --only afs/     # names containing "afs/"
    .venv/bin/python bench/blind_corpus.py --seed 7 --json build/blind.json
    .venv/bin/python bench/blind_corpus.py --corpus blind_corpus2   # another corpus in bench/

For each submission it
  (a) runs the release's visible checks as a student sees them: the notebook's setup, data
      and answer cells, then each test cell's `check(...)` with the student kit, in the
      release's folder (its `visible_checks.safetensors`), in a fresh process of its own;
  (b) grades the notebook with the real engine: hidden cases from the seed pool (or
      --seed), the sandbox, the warm fork server (`runner.grade_notebook`);
  (c) compares each part's points and mistake name with the corpus's labels.

Then it prints a table and the figures issue 27 asks of a second corpus, and exits 1 when
a bar is missed:
  * right score: submissions whose every part scored as labelled (bar: 100%);
  * named right: gradings labelled with a name that got it (bar: >= 90%);
  * misleading: gradings of wrong work given a name that does not fit, over all the
    gradings that lose points, and over those where no name fits (bar: <= 5% each);
  * names on correct work (bar: 0);
  * wrong submissions that pass every visible check yet lose points (bar: 0);
  * submissions that change their inputs and keep full marks (bar: 0).

A submission that changes its inputs is labelled with `CHANGES_INPUTS`: it matches any name
of the grader's vocabulary whose explanation is about changed or aliased inputs
(`input_change_names`); main had none when the corpus was written.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import linecache
import multiprocessing
import os
import re
import resource
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("MPLBACKEND", "Agg")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import nbformat  # noqa: E402
import torch  # noqa: E402

from autograder.engine.runner import grade_notebook  # noqa: E402
from autograder.kit.diagnosis import MISTAKES  # noqa: E402

if TYPE_CHECKING:
    from blind_corpus import Submission

VISIBLE_SECONDS = 600  # one submission's visible checks, the notebook's cells included
BARS = {"right score": 100.0, "named right": 90.0, "misleading": 5.0}
# The corpus graded: a package of bench/ with CHANGES_INPUTS, all_submissions() and a module
# per assignment (BASE, PARTS); --corpus chooses it.
corpus = importlib.import_module("blind_corpus")


def input_change_names() -> frozenset[str]:
    """The grader's names for a function that changes its inputs or returns an alias of one:
    those whose name and explanation speak of the inputs (or arguments) being changed,
    modified, written into, aliased or sharing their memory."""
    about_inputs = re.compile(r"\b(inputs?|arguments?)\b")
    changed = re.compile(r"chang|modif|mutat|alias|written into|writes into|in place|in-place"
                         r"|shares? (its |their )?memory")
    return frozenset(name for name, mistake in MISTAKES.items()
                     if about_inputs.search(mistake.title)
                     and changed.search(f"{name} {mistake.title}"))


def names_for(label: str | None, changes: frozenset[str]) -> frozenset[str | None]:
    return changes if label == corpus.CHANGES_INPUTS else frozenset({label})


def module_of(assignment: str):
    return importlib.import_module(f"{corpus.__name__}.{assignment}")


def notebook_of(submission: Submission) -> nbformat.NotebookNode:
    """The release notebook with the base's answer cells, then the submission's."""
    path = REPO / "assignments" / submission.assignment / f"{submission.assignment}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    answers = {**module_of(submission.assignment).BASE, **submission.cells}
    filled = set()
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in answers:
            cell.source = answers[grade_id].strip("\n") + "\n"
            filled.add(grade_id)
    if filled != set(answers):
        raise ValueError(f"{submission.name}: no answer cell {sorted(set(answers) - filled)}")
    return notebook


# ---- (a) the visible checks, as the student's kernel runs them ---------------------------

def _visible_child(notebook: nbformat.NotebookNode, folder: Path, reply) -> None:
    """In a forked child: the notebook's setup, data, answer and test cells in order; each
    test cell's verdict (passed, its message's first line) by grade id."""
    os.chdir(folder)
    namespace = {"__name__": "__main__"}
    verdicts = {}
    warnings.simplefilter("ignore")
    for cell in notebook.cells:
        info = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not info:
            continue  # the notebook's own demonstrations: not a check
        out = io.StringIO()
        try:
            # Registered as IPython registers a cell, so that inspect can read its source.
            filename = f"<cell {info.get('grade_id')}>"
            linecache.cache[filename] = (len(cell.source), None,
                                         cell.source.splitlines(True), filename)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(compile(cell.source, filename, "exec"), namespace)
        except BaseException as error:  # noqa: BLE001 - a student's cell may raise anything
            if info.get("grade"):
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                verdicts[info["grade_id"]] = (False, f"{type(error).__name__}: {first}")
            continue
        if info.get("grade"):
            verdicts[info["grade_id"]] = (True, out.getvalue().strip().splitlines()[-1:])
    reply.send(verdicts)
    reply.close()


def visible_checks(submission: Submission, notebook: nbformat.NotebookNode) -> dict:
    """{part id: (passed, message)} from the release's visible checks."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    folder = REPO / "assignments" / submission.assignment
    child = context.Process(target=_visible_child, args=(notebook, folder, send))
    child.start()
    send.close()
    verdicts = receive.recv() if receive.poll(VISIBLE_SECONDS) else None
    child.join(5)
    if child.is_alive():
        child.kill()
        child.join()
    if verdicts is None:
        raise RuntimeError(f"{submission.name}: the visible checks did not finish")
    return verdicts


# ---- (b) the engine ----------------------------------------------------------------------

def engine_grade(submission: Submission, notebook: nbformat.NotebookNode,
                 seed: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="blind-") as folder:
        path = Path(folder) / f"{submission.assignment}.ipynb"
        nbformat.write(notebook, path)
        return grade_notebook(path, submission.assignment, seed=seed).to_json()


# ---- (c) against the labels --------------------------------------------------------------

def verdicts_of(submission: Submission, graded: dict, visible: dict,
                changes: frozenset[str]) -> list[dict]:
    """One row per part: what the labels expect, what the engine and the checks gave."""
    rows = []
    known = module_of(submission.assignment).PARTS
    for part in graded["parts"]:
        if part["id"] not in known:
            continue  # added after the corpus was written: no label for it
        loss = submission.lost.get(part["id"])
        expected = part["max_score"] if loss is None else loss.points
        label = None if loss is None else loss.name
        acceptable = names_for(label, changes)
        for other in (loss.ok if loss else ()):
            acceptable |= names_for(other, changes)
        seen = visible.get(part["id"])
        rows.append({
            "part": part["id"], "max": part["max_score"], "expected": expected,
            "label": label, "got": part["score"], "name": part["mistake"],
            "score_right": part["score"] == expected,
            # A name is optional where its label allows none (a part that fails through a
            # helper it calls): such a grading does not count for or against "named right".
            "name_optional": loss is not None and None in loss.ok,
            "named_right": loss is not None and label is not None
            and part["mistake"] in names_for(label, changes),
            "misleading": part["mistake"] is not None and part["mistake"] not in acceptable
            and not submission.correct,
            "visible_passed": None if seen is None else seen[0],
            "message": part["message"].splitlines()[0][:160] if part["message"] else "",
        })
    return rows


def unknown_parts(changes: frozenset[str]) -> None:
    """Say which parts of the releases the corpus has no labels for (they are not judged),
    and check that the labels use only names of this grader's vocabulary."""
    for submission in corpus.all_submissions():
        for loss in submission.lost.values():
            for name in (loss.name, *loss.ok):
                if name not in (None, corpus.CHANGES_INPUTS) and name not in MISTAKES:
                    print(f"{submission.name}: label {name!r} is not a name of this grader")
    for assignment in sorted({s.assignment for s in corpus.all_submissions()}):
        path = REPO / "assignments" / assignment / f"{assignment}.ipynb"
        tests = [cell.metadata["nbgrader"]["grade_id"]
                 for cell in nbformat.read(path, as_version=4).cells
                 if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade")]
        extra = sorted(set(tests) - set(module_of(assignment).PARTS))
        if extra:
            print(f"{assignment}: parts the corpus does not judge (added since): {extra}")


def percent(count: int, total: int, empty: float = 100.0) -> float:
    return 100.0 * count / total if total else empty


def figures(results: list[dict]) -> dict:
    wrong = [r for r in results if not r["correct"]]
    labelled_losing = [row for r in wrong for row in r["rows"] if row["expected"] < row["max"]]
    named = [row for row in labelled_losing
             if row["label"] is not None and not row["name_optional"]]
    unnamed = [row for row in labelled_losing if row["label"] is None]
    # A name on a part that should keep its points, in wrong work, misleads too.
    stray = [row for r in wrong for row in r["rows"]
             if row["expected"] == row["max"] and row["misleading"]]
    misleading = [row for row in labelled_losing if row["misleading"]] + stray
    return {
        "submissions": len(results),
        "correct submissions": len(results) - len(wrong),
        "right score": percent(sum(r["score_right"] for r in results), len(results)),
        "right score (wrong work)": percent(sum(r["score_right"] for r in wrong), len(wrong)),
        "named right": percent(sum(row["named_right"] for row in named), len(named)),
        "named gradings": len(named),
        "misleading": percent(len(misleading), len(labelled_losing), 0.0),
        "misleading (where no name fits)": percent(
            sum(row["misleading"] for row in unnamed), len(unnamed), 0.0),
        "unnamed gradings": len(unnamed),
        "names on correct work": sum(row["name"] is not None for r in results
                                     if r["correct"] for row in r["rows"]),
        "visible pass, graded down": sum(
            r["visible_all_passed"] and r["score"] < r["max_score"] for r in wrong),
        "visible pass, graded down (parts)": sum(
            row["visible_passed"] and row["got"] < row["max"] for r in wrong
            for row in r["rows"]),
        "change inputs, full marks": sum(r["changes_inputs"] and r["score"] == r["max_score"]
                                         for r in results),
    }


def bars_missed(numbers: dict) -> list[str]:
    missed = []
    if numbers["right score"] < BARS["right score"]:
        missed.append("right score below 100%")
    if numbers["named right"] < BARS["named right"]:
        missed.append("named right below 90%")
    for key in ("misleading", "misleading (where no name fits)"):
        if numbers[key] > BARS["misleading"]:
            missed.append(f"{key} above 5%")
    for key in ("names on correct work", "visible pass, graded down",
                "change inputs, full marks"):
        if numbers[key]:
            missed.append(f"{key}: {numbers[key]}")
    return missed


def show_name(name: str | None) -> str:
    return "-" if name is None else name


def print_table(results: list[dict]) -> None:
    print(f"\n{'submission':44} {'expect':>7} {'got':>7} {'visible':>7}  parts off label")
    for r in results:
        off = [f"{row['part']}: want {row['expected']:g} {show_name(row['label'])}, got "
               f"{row['got']:g} {show_name(row['name'])}"
               for row in r["rows"] if not row["score_right"] or row["misleading"]
               or (row["label"] is not None and not row["name_optional"]
                   and not row["named_right"])]
        passed = sum(bool(row["visible_passed"]) for row in r["rows"])
        mark = "  " if not off else "✘ "
        print(f"{mark}{r['name']:42} {r['expected']:7g} {r['score']:7g} "
              f"{passed:>3}/{len(r['rows']):<3}  {'; '.join(off)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="grade the submissions whose name has this")
    parser.add_argument("--seed", type=int, default=None,
                        help="one hidden seed for every grading (default: the seed pool)")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    parser.add_argument("--corpus", default="blind_corpus",
                        help="the corpus: a package in bench/ (default: blind_corpus)")
    args = parser.parse_args(argv)

    global corpus
    corpus = importlib.import_module(args.corpus)

    changes = input_change_names()
    print(f"grader at {REPO}; names for changed inputs: {sorted(changes) or 'none'}")
    unknown_parts(changes)
    torch.set_num_threads(1)
    chosen = [s for s in corpus.all_submissions() if args.only in s.name]
    results, started = [], time.monotonic()
    for number, submission in enumerate(chosen, 1):
        notebook = notebook_of(submission)
        try:
            visible = visible_checks(submission, notebook)
            graded = engine_grade(submission, notebook, args.seed)
        except Exception:  # noqa: BLE001 - a grader fault: no figures from this run
            traceback.print_exc()
            print(f"{submission.name}: the grader failed; stopping", file=sys.stderr)
            return 2
        rows = verdicts_of(submission, graded, visible, changes)
        result = {
            "name": submission.name, "assignment": submission.assignment,
            "why": submission.why, "correct": submission.correct,
            "changes_inputs": submission.changes_inputs, "seed": graded["seed"],
            # Over the parts the corpus judges (a part added since is left out).
            "score": sum(row["got"] for row in rows),
            "max_score": sum(row["max"] for row in rows),
            "expected": sum(row["expected"] for row in rows),
            "score_right": all(row["score_right"] for row in rows),
            "visible_all_passed": all(row["visible_passed"] for row in rows),
            "rows": rows,
        }
        results.append(result)
        print(f"[{number}/{len(chosen)}] {submission.name}: {result['score']:g}/"
              f"{result['max_score']:g} (labelled {result['expected']:g}), seed "
              f"{graded['seed']}, {time.monotonic() - started:.0f} s", flush=True)

    print_table(results)
    numbers = figures(results)
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"\n{len(results)} submissions in {time.monotonic() - started:.0f} s wall, "
          f"{cpu:.0f} s CPU here and in the visible checks (the sandbox's not counted), "
          f"load average {os.getloadavg()[0]:.1f}")
    for key, value in numbers.items():
        shown = f"{value:.1f}%" if isinstance(value, float) else value
        print(f"  {key}: {shown}")
    print("\nmismatches (submission, part: expected -> got):")
    for r in results:
        for row in r["rows"]:
            if not row["score_right"] or row["misleading"] or (
                    row["label"] is not None and row["expected"] < row["max"]
                    and not row["name_optional"] and not row["named_right"]):
                print(f"  {r['name']}, {row['part']}: {row['expected']:g}/{row['max']:g} "
                      f"{show_name(row['label'])} -> {row['got']:g} {show_name(row['name'])}"
                      f" (visible: {'pass' if row['visible_passed'] else 'fail'})"
                      f" | {row['message'][:110]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"figures": numbers, "results": results}, indent=1))
    missed = bars_missed(numbers)
    print("\nbars: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
