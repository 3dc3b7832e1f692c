"""The engine's front door: a grade on every path, whatever the child does to itself; strings
from the child as plain text; submitted nbgrader metadata rebuilt from the release; route
rules that say what a part teaches; and no import circle in the package."""

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from conftest import command_here
from safetensors.torch import save

from autograder.course import REPO
from autograder.engine import Limits, grade_notebook, protocol
from autograder.engine.errors import GraderError
from autograder.engine.isolation import full_isolation_available
from autograder.engine.uids import COUNT, FIRST_UID
from autograder.submissions import answered, student_answers

ASSIGNMENT = "nn_from_scratch"
RELEASE = REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
FULL_ISOLATION = pytest.mark.skipif(
    not full_isolation_available(),
    reason="needs root and bubblewrap (apt-get install bubblewrap) for full isolation")
ANSWER_CELLS = {"sigmoid_activation": "sigmoid_activation_answer",
                "sigmoid_delta": "sigmoid_delta_answer",
                "numerical_gradients": "gradient_check_answer",
                "train_step": "train_step_answer", "train": "train_answer"}


def notebook_with(tmp_path: Path, name: str = "submission", **before: str) -> Path:
    """The answer key, with code run first whenever the named functions are called."""
    answers = student_answers(ASSIGNMENT)
    for function, code in before.items():
        body = "\n".join("    " + line for line in code.strip().splitlines())
        answers[ANSWER_CELLS[function]] += (f"\n_{function} = {function}\n"
                                            f"def {function}(*args):\n{body}\n"
                                            f"    return _{function}(*args)\n")
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(answered(RELEASE, answers), path)
    return path


# ---- no import circle ----------------------------------------------------------------------

def _modules() -> dict[str, Path]:
    package = REPO / "autograder"
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules
                       else module for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                imported.add(target)
    return imported


def test_no_module_of_the_package_imports_itself_through_others():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "autograder.engine.errors" in graph["autograder.engine.isolation"]
    state: dict[str, str] = {}

    def circle_from(name: str, trail: list[str]) -> list[str] | None:
        state[name] = "open"
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                return [*trail[trail.index(imported):], imported]
            if imported not in state and (found := circle_from(imported, trail + [imported])):
                return found
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            circle = circle_from(name, [name])
            assert circle is None, " -> ".join(circle)


# ---- a grade on every path ------------------------------------------------------------------

@pytest.mark.slow
@FULL_ISOLATION
def test_a_death_the_child_brings_on_itself_is_the_students_zero_with_a_note(tmp_path):
    path = notebook_with(
        tmp_path,
        # The attack: lower its own CPU limit, then spin.
        sigmoid_delta="import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_CPU, "
                      "(1, 1))\nexcept (OSError, ValueError):\n    pass\nwhile True:\n    pass",
        numerical_gradients="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        train_step="import os\nos.abort()",
        train="import sys\nsys.setrecursionlimit(10**8)\nx = []\nfor _ in range(10**6):\n"
              "    x = [x]\nrepr(x)")
    result = grade_notebook(path, ASSIGNMENT, limits=Limits(part_seconds=40, cpu_seconds=4))
    verdicts = {part.part_id: part for part in result.parts}
    assert verdicts["sigmoid_activation"].passed and verdicts["forward"].passed
    assert "sigmoid_delta used up its CPU time (4 s)" in verdicts["sigmoid_delta"].message
    assert "PermissionError" in verdicts["gradient_check"].message
    for part_id in ("train_step", "train"):
        assert verdicts[part_id].score == 0
        assert "crashed (SIGSEGV)" in verdicts[part_id].message, verdicts[part_id].message
    assert "seccomp" in result.isolation


@FULL_ISOLATION
def test_a_kill_from_outside_the_sandbox_is_the_graders_fault_never_a_zero(tmp_path):
    path = notebook_with(tmp_path, sigmoid_activation="import time\ntime.sleep(60)")
    killed = []

    def kill_the_child() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for process in psutil.process_iter(["uids"]):
                uids = process.info["uids"]
                with contextlib.suppress(psutil.Error):  # only this test's own sandbox
                    ours = os.getpid() in {parent.pid for parent in process.parents()}
                if uids and FIRST_UID <= uids.real < FIRST_UID + COUNT and ours:
                    time.sleep(1)  # asleep in the student's function by now
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(process.pid)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_child)
    killer.start()
    try:
        with pytest.raises(GraderError, match="killed from outside"):
            grade_notebook(path, ASSIGNMENT, limits=Limits(part_seconds=50))
    finally:
        killed.append(None)
        killer.join()


# ---- strings from the child ---------------------------------------------------------------

HOSTILE = "\x1b[2J\x1b[31mboom\r\nforward: 2/2. forward is correct\ud800\u202e!"


def test_every_string_the_child_writes_is_read_back_as_plain_text(tmp_path):
    status = {"cells_done": True, "cell_errors": [HOSTILE],
              "parts": {"sigmoid_activation": [{"message": HOSTILE, "mistake": None}]}}
    (tmp_path / protocol.STATUS).write_bytes(json.dumps(status).encode())
    (tmp_path / protocol.outputs_file("sigmoid_activation")).write_bytes(save({}))
    read = protocol.read_status(tmp_path)
    part = next(p for p in __import__("autograder.references", fromlist=["get"]).get(
        ASSIGNMENT).parts if p.id == "sigmoid_activation")
    [finding] = protocol.read_outcomes(tmp_path, [part], {part.id: 2}, read)[part.id]
    for text in (finding.message, read["cell_errors"][0]):
        assert text.encode("utf-8")  # valid UTF-8: no lone surrogate
        assert not any(ord(c) < 32 and c != "\n" or c in "\x7f\u202e" for c in text), text
        assert "\\x1b[2J" in text and "\\ud800" in text and "\nforward" in text


@pytest.mark.slow
def test_grade_prints_a_hostile_message_as_itself(tmp_path):
    path = notebook_with(tmp_path, sigmoid_activation=f"raise ValueError({HOSTILE!r})")
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path),
                           "--assignment", ASSIGNMENT], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    shown = done.stdout.decode("utf-8")  # strict: a lone surrogate would not decode
    assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    assert "\\x1b[2J" in shown
    # Each real score starts a line, once; the message's fake one is indented under its part.
    starts = [line.split(".")[0] for line in shown.splitlines() if line.startswith("forward:")]
    assert starts == ["forward: 0/2"], shown
    assert "    forward: 2/2. forward is correct\\ud800" in shown


# ---- submitted nbgrader metadata ------------------------------------------------------------

def hostile_metadata(notebook: dict) -> dict:
    """The answer key with every edit to nbgrader's metadata the issue tried, and more."""
    cells = notebook["cells"]
    by_id = {c["metadata"].get("nbgrader", {}).get("grade_id"): c for c in cells}
    by_id["sigmoid_activation"]["metadata"]["nbgrader"]["points"] = 100
    by_id["forward_answer"]["metadata"]["nbgrader"].update(grade=True, points=50, locked=True)
    by_id["train"]["metadata"]["nbgrader"]["solution"] = True  # a test cell as an answer
    cells.append(json.loads(json.dumps(by_id["forward"])))  # a duplicate grade id
    cells[0]["metadata"]["nbgrader"] = {"grade": True, "grade_id": "<img src=x onerror=1>",
                                        "points": 7, "solution": False, "locked": False}
    cells[1]["id"] = "not a valid id!"
    cells[2]["id"] = cells[3]["id"]
    notebook["nbformat_minor"] = 99
    notebook["metadata"]["backprop_lab"] = {"note": "not graded, says the student"}
    return notebook


def test_rebuilt_metadata_gives_no_point_and_a_valid_notebook():
    from autograder.engine.release_metadata import rebuild_from_release, release_of

    release = release_of(ASSIGNMENT)
    key = json.loads((REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    assert rebuild_from_release(json.loads(json.dumps(key)), release) is None
    notebook = hostile_metadata(key)
    note = rebuild_from_release(notebook, release)
    assert "restored from the assignment as released" in note
    nbformat.validate(nbformat.from_dict(notebook))
    graded = [c["metadata"]["nbgrader"] for c in notebook["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade")]
    expected = [c["metadata"]["nbgrader"] for c in release["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade")]
    assert sorted(graded, key=str) == sorted(expected, key=str)
    assert notebook["nbformat_minor"] == release["nbformat_minor"]
    assert "backprop_lab" not in notebook["metadata"]


@pytest.mark.slow
@FULL_ISOLATION
def test_nbgrader_autograde_and_feedback_grade_hostile_metadata_and_strings(
        tmp_path, generated_course):
    course = generated_course(tmp_path / "work", ASSIGNMENT)
    key = json.loads((REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    surrogate = nbformat.reads(json.dumps(key), as_version=4)
    for cell in surrogate.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "sigmoid_activation_answer":
            cell.source += f"\n_s = sigmoid_activation\ndef sigmoid_activation(z):\n" \
                           f"    raise ValueError({HOSTILE!r})\n"
    for student, text in (("meta", json.dumps(hostile_metadata(key))),
                          ("strings", nbformat.writes(surrogate))):
        path = course.notebook_of("submitted", student, ASSIGNMENT)
        path.parent.mkdir(parents=True)
        path.write_text(text)
    course.enroll(["meta", "strings"])
    course.run("autograde", ASSIGNMENT)
    course.run("generate_feedback", ASSIGNMENT)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", "backprop-lab") as book:
        meta = book.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "meta")
        strings = book.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "strings")
        assert (meta.score, meta.max_score) == (15, 16)  # the written answer awaits a person
        assert strings.max_score == 16 and strings.score < 15  # graded: its sigmoid fails
    for student in ("meta", "strings"):
        page = course.notebook_of("feedback", student, ASSIGNMENT).read_text()
        assert "<img src=x" not in page
    autograded = nbformat.read(course.notebook_of("autograded", "meta", ASSIGNMENT), 4)
    assert "restored from the assignment" in autograded.metadata["backprop_lab"]["note"]
    # The engine's own path over the same course, then nbgrader's feedback from its notebooks.
    done = command_here("grade-assignment", ASSIGNMENT, "--course", str(course.root),
                        "--regrade")
    assert done.returncode == 0, done.stderr
    assert "restored from the assignment" in done.stdout
    course.run("generate_feedback", ASSIGNMENT, "--force")


# ---- route rules ----------------------------------------------------------------------------

SIGMOID = "def sigmoid_activation(z):\n    {}\n"
LOCAL = ("def sigmoid_local_gradient(z):\n    z = z.clone().requires_grad_()\n"
         "    a = torch.sigmoid(z)\n    {}\n    return a, local_gradient\n")
SOFTMAX = ("def softmax_cross_entropy(logits, labels):\n    {}\n"
           "    logits = logits.clone().requires_grad_()\n"
           "    loss = nn.CrossEntropyLoss()(logits, labels)\n    loss.backward()\n"
           "    return probabilities, loss, logits.grad\n")
ON_ROUTE = [
    ("nn_from_scratch", "sigmoid_activation", SIGMOID, "return torch.exp(z) / (1 + torch.exp(z))"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID, "return (1 + (-z).exp()).reciprocal()"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "return torch.where(z >= 0, 1 / (1 + torch.exp(-z)), torch.exp(z) / (1 + torch.exp(z)))"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "return 1 / (1 + _e(-z))\nfrom torch import exp as _e"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "return 1 / (1 + helper(-z))\ndef helper(x):\n    return torch.exp(x)"),
    ("autograd_basics", "grad_fn", LOCAL, "local_gradient = a.grad_fn(torch.ones_like(a))"),
    ("autograd_basics", "softmax_cross_entropy", SOFTMAX,
     "shifted = logits - logits.max(dim=1, keepdim=True).values\n"
     "    probabilities = shifted.exp() / shifted.exp().sum(1, keepdim=True)"),
]
OFF_ROUTE = [
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "return torch.nn.functional.logsigmoid(z).exp()", "logsigmoid"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "return ls(z).exp()\nfrom torch.nn.functional import logsigmoid as ls", "logsigmoid"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "return getattr(torch, 'sig' + 'moid')(z)", "a call the source does not name"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID, "return (1 + torch.tanh(z / 2)) / 2",
     "tanh"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "return torch.exp(-torch.nn.functional.softplus(-z))", "softplus"),
    ("nn_from_scratch", "sigmoid_activation", SIGMOID,
     "out = z.clone()\n    out.copy_(torch.special.expit(z))\n    return out", "expit"),
    ("autograd_basics", "grad_fn", LOCAL,
     "local_gradient = torch.exp(torch.log(a) + torch.log1p(-a)).detach()", "exp"),
    ("autograd_basics", "grad_fn", LOCAL,
     "local_gradient = (a * (1 - a)).detach()", "mul"),
    ("autograd_basics", "softmax_cross_entropy", SOFTMAX,
     "probabilities = torch.nn.functional.softmin(-logits, 1)", "softmin"),
    ("autograd_basics", "softmax_cross_entropy", SOFTMAX,
     "probabilities = torch.log_softmax(logits, 1).exp()", "log_softmax"),
]


def route_verdicts(assignment: str, part_id: str, template: str, body: str):
    """(the trusted side's verdict on the source, the kit's on a call) for one answer."""
    import torch

    from autograder import references
    from autograder.engine.child import code_cells
    from autograder.kit.parts import StudentError
    from autograder.kit.routes import route_in_source

    part = references.get(assignment).part(part_id)
    code = template.format(body)
    answers = student_answers(assignment)
    answers[next(k for k in answers if k.startswith(part_id) or
                 k.startswith(part.function))] = code
    release = REPO / "assignments" / assignment / f"{assignment}.ipynb"
    source = nbformat.writes(answered(release, answers)).encode()
    static = route_in_source(source, part.function, code_cells, part.call.route, part.returns)
    namespace = {"torch": torch, "nn": torch.nn}
    exec(compile(code, "<answer>", "exec"), namespace)
    try:
        part.call(namespace[part.function], *part.cases("hidden", 7)[0].args.values())
        return static, None
    except StudentError as error:
        return static, str(error)


@pytest.mark.parametrize("assignment, part_id, template, body", ON_ROUTE)
def test_a_route_written_by_hand_passes_however_it_is_written(assignment, part_id, template,
                                                             body):
    assert route_verdicts(assignment, part_id, template, body) == (None, None)


@pytest.mark.parametrize("assignment, part_id, template, body, used", OFF_ROUTE)
def test_a_built_in_on_the_route_fails_whatever_its_name(assignment, part_id, template, body,
                                                         used):
    static, called = route_verdicts(assignment, part_id, template, body)
    assert static and f"with {used}:" in static, static
    assert called and (" computes " in called or " used " in called), called  # as run
