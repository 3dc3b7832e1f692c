"""The student kit on its own: installed into a fresh virtualenv without the grader, it runs
every release notebook, judges the visible cases as the grader does, and holds no
reference, no hidden-case code and no hidden seed."""

import ast
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbgrader.utils import determine_grade, is_grade
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from autograder.course import REPO, assignment_names
from autograder.kit import visible
from autograder.kit.grading import grade_part
from autograder.kit.syntax import parse_cell
from autograder.references import get
from autograder.references.graded import grade_with_references
from autograder.submissions import defined_names, solutions, student_answers
from autograder.visible_data import VISIBLE_SEED

pytestmark = pytest.mark.slow

# What only the grader has: a reference, a case generator, a known mistake's computation,
# a seed of hidden cases. None of these names may be in the kit's installed files.
GRADER_ONLY = ("def reference_", "make_cases", "HIDDEN_SEED", "_cases(kind", "def mistaken_",
               "seeded_networks", "VISIBLE_SEED", "from ..known_mistakes", "from ..references",
               "import autograder.references.graded", "def random_data", "def leaky_data",
               "def one_input_data", "def _trained", "def pre_activations",
               "HIDDEN_TIMED_SHAPE", "TIMED_CALLS")


# What the kit needs beside itself, as a student installs it (README, "Student kit").
KIT_NEEDS = ("torch", "numpy", "safetensors", "matplotlib", "ipykernel")


def installed_with_requirements(names) -> list[metadata.Distribution]:
    """These distributions of this environment and every one they require, transitively."""
    found: dict[str, metadata.Distribution] = {}
    wanted = list(names)
    while wanted:
        name = canonicalize_name(wanted.pop())
        if name in found:
            continue
        found[name] = metadata.distribution(name)
        for line in found[name].requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return list(found.values())


@pytest.fixture(scope="module")
def kit_python(tmp_path_factory) -> Path:
    """The python of a fresh virtualenv holding torch, ipykernel and the kit alone.

    The kit is built and installed by pip. Its dependencies are this environment's own
    installs of them (pinned by constraints.txt, as a student's pip would pick them), linked
    into the new virtualenv with everything they require and nothing else: no grader, no
    nbgrader. Installing them again would unpack 1.2 GB (two minutes of a test run)."""
    root = tmp_path_factory.mktemp("kit-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    target = site_packages(python)
    for distribution in installed_with_requirements(KIT_NEEDS):
        here = Path(distribution.locate_file(""))
        for top in {Path(f).parts[0] for f in distribution.files or ()} - {"..", "__pycache__"}:
            if (here / top).exists() and not (target / top).exists():
                (target / top).symlink_to(here / top)
    assert "autograder" not in {p.name for p in target.iterdir()}
    # Built from a copy, so that the build leaves nothing in the checkout.
    shutil.copytree(REPO / "autograder" / "kit", root / "kit",
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(root / "kit")], check=True)
    return python


def site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_the_install_holds_the_kit_alone(kit_python):
    installed = site_packages(kit_python) / "autograder"
    files = sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*.py"))
    assert files and all(f.startswith("kit/") for f in files), files
    assert not (installed / "__init__.py").exists()
    for path in installed.rglob("*.py"):
        text = path.read_text()
        found = [name for name in GRADER_ONLY if name in text]
        assert not found, f"{path.name} holds {found}"
    for module in ("autograder.references", "autograder.references.graded", "autograder.engine",
                   "autograder.visible_data"):
        done = subprocess.run([str(kit_python), "-c", f"import {module}"], capture_output=True,
                              text=True, cwd=kit_python.parent)
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, module
    size = sum(p.stat().st_size for p in installed.rglob("*") if p.is_file())
    print(f"\nthe kit's install: {len(files)} files, {size / 1024:.0f} KiB")


def execute(notebook_path: Path, kit_python: Path, tmp_path: Path) -> nbformat.NotebookNode:
    """Run a notebook in a kernel of the kit's virtualenv, from a copy of its folder."""
    folder = tmp_path / notebook_path.parent.name
    shutil.copytree(notebook_path.parent, folder)
    spec = tmp_path / "jupyter" / "kernels" / "kit"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(kit_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kit", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(tmp_path / "jupyter")
    notebook = nbformat.read(folder / notebook_path.name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="kit", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def errors(notebook) -> list:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


# What an answer key prints where it follows its tutorial step by step.
TUTORIAL_PRINTS = {"nn_from_scratch": ("a1 = tensor([[0.9697, 0.8139, 0.3020]]",
                                       "output = tensor([[0.8594]]", "final loss:")}


@pytest.mark.parametrize("assignment", assignment_names())
def test_release_and_answer_key_run_in_the_kit(assignment, kit_python, tmp_path):
    """Top to bottom in a fresh kernel of the kit alone: the answer key cleanly, earning
    every point (and reproducing its tutorial's numbers); the blank release without
    crashing the kernel, its checks saying what is wrong."""
    key = execute(REPO / "solutions" / assignment / f"{assignment}.ipynb", kit_python,
                  tmp_path / "key")
    assert errors(key) == []
    grades = [determine_grade(c) for c in key.cells if is_grade(c) and c.cell_type == "code"]
    assert grades and all(score == maximum for score, maximum in grades)
    printed = "".join(o.get("text", "") for c in key.cells if c.cell_type == "code"
                      for o in c.outputs)
    for phrase in TUTORIAL_PRINTS.get(assignment, ()):
        assert phrase in printed
    blank = execute(REPO / "assignments" / assignment / f"{assignment}.ipynb", kit_python,
                    tmp_path / "blank")
    assert {o.ename for o in errors(blank)} <= {"NotImplementedError", "WrongAnswer",
                                                "NameError"}
    assert any(o.ename == "WrongAnswer" for o in errors(blank))


# Run in the kit's virtualenv: each submission's answer cells, then every check, on the
# visible cases shipped with the release. Prints {student: {part: message}} as JSON.
RUN_CHECKS = """
import contextlib, io, json, linecache, sys
from autograder.kit import checker, example
from autograder.kit.notebook import WrongAnswer
jobs = json.load(open(sys.argv[1]))
verdicts = {}
for job in jobs:
    namespace = {"checker": checker, "example": example}
    exec(job["setup"], namespace)
    for index, code in enumerate(job["answers"]):
        name = f"<answer cell {index}>"  # its source readable, as in a kernel
        linecache.cache[name] = (len(code), None, code.splitlines(keepends=True), name)
        exec(compile(code, name, "exec"), namespace)
    check = checker(job["assignment"], job["folder"])
    verdicts[job["student"]] = {}
    for part_id, function in job["parts"]:
        try:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                check(part_id, namespace.get(function))
            verdicts[job["student"]][part_id] = out.getvalue().strip()
        except WrongAnswer as error:
            verdicts[job["student"]][part_id] = "WrongAnswer: " + str(error)
print(json.dumps(verdicts))
"""


def test_visible_checks_in_the_kit_say_what_the_grader_says(kit_python, tmp_path):
    """On the labelled mistake corpus, each visible check in the kit's virtualenv passes or
    fails with the message (and the diagnosis in it) that the grader gives on the same cases
    with its own references. A part is checked once per distinct code it runs (most
    submissions run the answer key's code for most parts)."""
    sys.path.insert(0, str(REPO / "bench"))
    from seed_sweep import labelled_submissions

    jobs, expected, checked = [], {}, set()
    for assignment in assignment_names():
        graded = get(assignment)
        setup = "import torch\nfrom torch import nn, optim\n"
        parts = [(p.id, p.function) for p in graded.parts if not p.timed]
        code = solutions(assignment, cell_type="code")  # not the written answers
        for submission in labelled_submissions(assignment):
            answers = {cell: text for cell, text in
                       student_answers(assignment, None, submission.edits).items()
                       if cell in code}
            keys = {part_id: (assignment, part_id, cells_run_by(function, answers))
                    for part_id, function in parts}
            new = [(part_id, function) for part_id, function in parts
                   if keys[part_id] not in checked]
            checked |= set(keys.values())
            if not new:
                continue
            namespace = defined_names(assignment, submission.edits)
            student = f"{assignment}/{submission.student}"
            jobs.append({"assignment": assignment, "student": student, "setup": setup,
                         "answers": list(answers.values()), "parts": new,
                         "folder": str(REPO / "assignments" / assignment)})
            expected[student] = {}
            for part_id, function in new:
                part = graded.part(part_id)
                result = grade_with_references(part, namespace.get(function),
                                               part.cases("visible", VISIBLE_SEED))
                expected[student][part_id] = f"✔ {result.message}" if result.passed \
                    else f"WrongAnswer: {result.message}"
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "run_checks.py").write_text(RUN_CHECKS)
    done = subprocess.run([str(kit_python), str(tmp_path / "run_checks.py"),
                           str(tmp_path / "jobs.json")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    differing = {student: {part: (got[student][part], message)
                           for part, message in parts.items()
                           if verdict(got[student][part]) != verdict(message)}
                 for student, parts in expected.items()}
    assert {s: d for s, d in differing.items() if d} == {}
    assert any("WrongAnswer" in m for parts in expected.values() for m in parts.values())
    same = sum(got[s][p] == m for s, parts in expected.items() for p, m in parts.items())
    print(f"\n{len(jobs)} submissions, {sum(map(len, expected.values()))} distinct checks: "
          f"the same verdicts, {same} with the very same message")


# Names whose use lets a function reach any global by a string.
OPAQUE_NAMES = {"globals", "vars", "locals", "eval", "exec", "__import__"}


def cells_run_by(function: str, answers: dict[str, str]) -> tuple[str, ...]:
    """The answer cells (their code) that a call of `function` can depend on: those that
    define it or any name these cells use, transitively, and every cell that does more than
    define names (a call or a store into an object outside a function, such as
    `Value.backward = backward`), since it may change what any part computes."""
    facts = {cell: _defines_uses_and_acts(code) for cell, code in answers.items()}
    chosen = {cell for cell, (_, _, acts) in facts.items() if acts}
    wanted, seen = {function}, set()
    while wanted - seen:
        name = (wanted - seen).pop()
        seen.add(name)
        for cell, (defined, used, _) in facts.items():
            if name in defined:
                chosen.add(cell)
                wanted |= used
    return tuple(code for cell, code in answers.items() if cell in chosen)


def _defines_uses_and_acts(code: str) -> tuple[set[str], set[str], bool]:
    """The names a cell binds at its top level, the names it reads anywhere, and whether
    running it does anything else (or reads globals by a string)."""
    tree = parse_cell(code)  # as the engine reads a cell: IPython syntax too
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        else:
            defined |= {n.id for n in ast.walk(node)
                        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return defined, used, _acts_outside_functions(tree) or bool(used & OPAQUE_NAMES)


def _acts_outside_functions(tree: ast.AST) -> bool:
    """A call, or a store or delete into an object, that runs when the cell runs: anywhere
    but in the body of a function or lambda (its decorators, defaults and annotations
    do run)."""
    pending = list(ast.iter_child_nodes(tree))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Call | ast.Delete | ast.Global | ast.Nonlocal) or (
                isinstance(node, ast.Attribute | ast.Subscript)
                and isinstance(node.ctx, ast.Store | ast.Del)):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            pending += [child for field, value in ast.iter_fields(node) if field != "body"
                        for child in (value if isinstance(value, list) else [value])
                        if isinstance(child, ast.AST)]
        else:
            pending += ast.iter_child_nodes(node)
    return False


def verdict(message: str) -> str:
    """Pass or fail, and where: the message up to the first case it names."""
    return message.split(": ")[0] + (": " + message.split(": ")[1] if ": " in message else "")


@pytest.mark.parametrize("assignment", assignment_names())
def test_shipped_expectations_are_the_graders(assignment):
    """The release's file holds the visible cases as the grader draws them and what it
    computes for them: judging against either gives the same verdict on the answer key."""
    shipped = visible.read(REPO / "assignments" / assignment)
    graded = get(assignment)
    key = defined_names(assignment)
    for part in graded.parts:
        cases = part.cases("visible", VISIBLE_SEED)
        assert [c.label for c in shipped.cases(part.id)] == [c.label for c in cases]
        if not part.timed:
            assert grade_part(part, key[part.function], shipped.cases(part.id), shipped).passed
