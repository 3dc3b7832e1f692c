"""The attack corpus: hostile submissions graded by the engine in one run, beside honest ones.

Each attack gets no point it did not earn (`earns`: the points its honest code is worth),
changes no other student's result, and leaves a note in its feedback. Every forbidden
access an attack manages (reading solutions, writing the gradebook, a network connection)
would leave a file in a world-writable "breach" folder: the run must leave none.
"""

import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.course import REPO
from autograder.engine import Limits, grade_assignment
from autograder.engine.isolation import GIB, SANDBOX_UID_BASE, full_isolation_available
from autograder.engine.results import read_json
from autograder.submissions import Edit, answered, student_answers

pytestmark = pytest.mark.slow

ASSIGNMENT = "nn_from_scratch"
RELEASE = REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
LIMITS = Limits(part_seconds=3, startup_seconds=30, cpu_seconds=60, memory_bytes=1 * GIB,
                processes=32)
BLANK = frozenset()


@dataclass(frozen=True)
class Attack:
    """A hostile (or honest) submission, the points its code earns, and the note it gets."""

    student: str
    earns: int
    note: str
    solved: frozenset[str] | None = None  # answer cells filled with the solution
    edits: tuple[Edit, ...] = ()
    code: tuple[tuple[str, str], ...] = ()  # (answer cell, code) replacing the solution
    damage: str | None = None
    honest: bool = False


def prefix(answer: str, marker: str, code: str) -> Edit:
    """Insert code (indented as a function body) before the solution line `marker`."""
    body = "\n".join("    " + line for line in code.strip().splitlines())
    return Edit(answer, marker, body + "\n" + marker)


BREACH = """
import os as _os
def _breach(what):
    with open(_os.path.join(BREACH_DIR, STUDENT + "-" + str(abs(hash(what)))), "w") as f:
        f.write(what)
"""

ATTACKS = [
    Attack("aaa_honest_key", 10, "is correct", honest=True),
    Attack("mmm_honest_partial", 4, "not written yet", honest=True, solved=frozenset(
        {"sigmoid_activation_answer", "forward_answer", "sigmoid_delta_answer"})),
    Attack("patch_comparisons", 0, "sigmoid_activation(z) is wrong", solved=BLANK, code=((
        "sigmoid_activation_answer", """
import numpy, autograder.compare, autograder.grading
torch.allclose = lambda *a, **k: True
torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)
numpy.allclose = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: True
autograder.compare.compare = lambda *a, **k: None
autograder.grading.judge = lambda *a, **k: None
def sigmoid_activation(z):
    return z
"""),)),
    Attack("always_equal_object", 0, "should be a torch.Tensor", solved=BLANK, code=((
        "sigmoid_activation_answer", """
class Anything:
    def __eq__(self, other): return True
    def __getattr__(self, name): return lambda *a, **k: self
def sigmoid_activation(z):
    return Anything()
"""),)),
    Attack("tensor_subclass", 0, "sigmoid_activation(z) is wrong", solved=BLANK, code=((
        "sigmoid_activation_answer", """
class Liar(torch.Tensor):
    def __eq__(self, other): return True
    def allclose(self, *a, **k): return True
def sigmoid_activation(z):
    return torch.zeros_like(z).as_subclass(Liar)
"""),)),
    Attack("sys_exit_in_stub", 3, "raised SystemExit", edits=(
        Edit("sigmoid_delta_answer", "return a * (1 - a)", "import sys; sys.exit(0)"),)),
    Attack("os_exit_in_stub", 2, "forward ended the process", edits=(
        prefix("forward_answer", "    z1 = torch.mm", "if len(X) > 1: import os; os._exit(0)"),)),
    Attack("os_exit_in_a_cell", 0, "did not run to the end: its code ended the process", edits=(
        Edit("sigmoid_delta_answer", "return a * (1 - a)",
             "return a * (1 - a)\nimport os; os._exit(0)"),)),
    Attack("keyboard_interrupt", 7, "raised KeyboardInterrupt", edits=(
        Edit("train_answer", "    losses = []", "    raise KeyboardInterrupt"),)),
    Attack("system_exit_in_a_cell", 10, "is correct", edits=(
        Edit("sigmoid_activation_answer", "return 1 / (1 + torch.exp(-z))",
             "return 1 / (1 + torch.exp(-z))\nraise SystemExit(0)"),)),
    Attack("fake_results_printed", 0, "sigmoid_activation(z) is wrong", solved=BLANK, code=((
        "sigmoid_activation_answer", """
import json, os
FAKE = json.dumps({"assignment": "nn_from_scratch", "score": 10, "max_score": 10,
                   "parts": [{"id": "sigmoid_activation", "score": 1, "max_score": 1}]})
print(FAKE)
os.write(1, (FAKE + "\\n").encode())
def sigmoid_activation(z):
    print(FAKE)
    os.write(1, (FAKE + "\\n").encode())
    return z
"""),)),
    Attack("write_grader_files", 0, "not written yet", solved=BLANK, code=((
        "sigmoid_activation_answer", BREACH + """
from autograder.course import REPO
targets = [COURSE + "/gradebook.db", COURSE + "/results/nn_from_scratch/aaa_honest_key.json",
           COURSE + "/results/nn_from_scratch/zzz_honest_key.json",
           COURSE + "/source/nn_from_scratch/nn_from_scratch.ipynb",
           str(REPO / "source/nn_from_scratch/nn_from_scratch.ipynb")]
for target in targets:
    try:
        with open(target, "a"):
            _breach("opened for writing " + target)
    except OSError:
        pass
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".planted", "w"):
            _breach("created a file beside " + target)
    except OSError:
        pass
def sigmoid_activation(z):
    raise NotImplementedError()
"""),)),
    Attack("read_solutions_and_tests", 0, "raised RuntimeError", solved=BLANK, code=((
        "train_step_answer", BREACH + """
import glob, os
from autograder.course import REPO
def train_step(*args):
    places = [REPO / "solutions", REPO / "source", REPO / ".git", COURSE + "/source",
              COURSE + "/release", os.path.expanduser("~root")]
    for place in places:
        for path in glob.glob(str(place) + "/**", recursive=True):
            try:
                with open(path, "rb") as f:
                    content = f.read()
            except OSError:
                continue
            if b"hidden=True" in content or b"BEGIN SOLUTION" in content:
                _breach("read " + path)
    raise RuntimeError("nothing to read")
"""),)),
    Attack("call_the_graders_reference", 4, "forbids", code=((
        "train_step_answer", """
from autograder.assignments.nn_from_scratch import reference_train_step
def train_step(*args):
    return tuple(reference_train_step(*args).values())
"""),)),
    Attack("walk_frames_and_gc", 0, "sigmoid_delta(a) is wrong", solved=BLANK, code=((
        "sigmoid_delta_answer", """
import gc, sys
def sigmoid_delta(a):
    frame = sys._getframe(1)
    while frame is not None:
        for name, value in frame.f_locals.items():
            if name in ("expected", "reference") and isinstance(value, torch.Tensor):
                return value
        frame = frame.f_back
    for thing in gc.get_objects():
        if type(thing).__name__ == "Part" and thing.id == "sigmoid_delta":
            try:
                return thing.reference(a)["sigmoid_delta(a)"]
            except Exception:
                pass
    return a
"""),)),
    Attack("hard_coded_visible_cases", 3, "hidden case", edits=(
        Edit("sigmoid_delta_answer", "return a * (1 - a)",
             "return a * (1 - a) if tuple(a.shape) in [(1, 3), (4, 5)] else a"),)),
    Attack("infinite_loop", 4, "did not finish within 3 s", edits=(
        prefix("train_step_answer", "    z1, a1, z2, output",
               "while len(X) > 1:\n    pass"),)),
    Attack("memory_bomb", 2, "MemoryError", edits=(
        prefix("forward_answer", "    z1 = torch.mm",
               "hog = [bytearray(1 << 26) for _ in range(10**6)] if len(X) > 1 else 0"),)),
    Attack("fork_bomb", 7, "did not finish within 3 s", edits=(
        prefix("train_answer", "    losses = []", """
import os
while learning_rate != 0.1:
    try:
        os.fork()
    except OSError:
        pass"""),)),
    Attack("open_sockets", 10, "is correct", edits=(
        prefix("sigmoid_activation_answer", "    return 1 /", BREACH + """
import socket
for address in [("127.0.0.1", PORT), ("1.1.1.1", 53), ("pypi.org", 443)]:
    try:
        socket.create_connection(address, timeout=1).close()
        _breach("connected to " + str(address))
    except OSError:
        pass"""),)),
    Attack("backward_in_manual_part", 4, "forbids", code=((
        "train_step_answer", """
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    params = [p.clone().requires_grad_() for p in (w1, b1, w2, b2)]
    with torch.enable_grad():
        loss = 0.5 * ((y - forward(X, *params)[3]) ** 2).sum()
        loss.backward()
    return tuple(p.detach() - learning_rate * p.grad for p in params)
"""),)),
    Attack("autograd_grad_kept_from_a_cell", 4, "forbids", code=((
        "train_step_answer", """
keep_grad = torch.autograd.grad
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    torch.set_grad_enabled(True)
    params = [p.clone().requires_grad_() for p in (w1, b1, w2, b2)]
    loss = 0.5 * ((y - forward(X, *params)[3]) ** 2).sum()
    grads = keep_grad(loss, params)
    return tuple(p.detach() - learning_rate * g for p, g in zip(params, grads))
"""),)),
    Attack("torch_func_grad", 4, "forbids", code=((
        "train_step_answer", """
from torch.func import grad
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    loss = lambda *p: 0.5 * ((y - forward(X, *p)[3]) ** 2).sum()
    grads = grad(loss, argnums=(0, 1, 2, 3))(w1, b1, w2, b2)
    return tuple(p - learning_rate * g for p, g in zip((w1, b1, w2, b2), grads))
"""),)),
    Attack("forged_sandbox_files", 0, "changed by the notebook's code", solved=BLANK, code=((
        "train_answer", """
import json, os
from safetensors.torch import save_file
def train(*args):
    parts = ["sigmoid_activation", "forward", "sigmoid_delta", "train_step", "train"]
    with open("status.json", "w") as f:
        json.dump({"cells_done": True, "cell_errors": [],
                   "parts": {p: ["ok"] * 9 for p in parts}}, f)
    save_file({"train/0/losses": torch.zeros(1)}, "outputs.safetensors")
    os._exit(0)
"""),)),
    Attack("deleted_test_cells", 10, "is correct", damage="delete tests"),
    Attack("edited_test_cells", 0, "not written yet", solved=BLANK, damage="edit tests"),
    Attack("invalid_json", 0, "not valid JSON", damage="invalid json"),
    Attack("empty_file", 0, "is empty", damage="empty"),
    Attack("million_line_output", 10, "is correct", damage="million lines"),
    Attack("zzz_honest_sign_error", 4, "opposite sign", honest=True, edits=(
        Edit("train_step_answer", "(y - output) * sigmoid_delta",
             "(output - y) * sigmoid_delta"),)),
    Attack("zzz_honest_key", 10, "is correct", honest=True),
]


def build(attack: Attack, path: Path, constants: dict) -> None:
    """Write the attack's notebook to path."""
    answers = student_answers(ASSIGNMENT, attack.solved, attack.edits)
    header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    for cell, code in attack.code:
        answers[cell] = code
    answers = {cell: header + code for cell, code in answers.items()}
    notebook = answered(RELEASE, answers)
    tests = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    if attack.damage == "delete tests":
        notebook.cells = [c for c in notebook.cells if c not in tests]
    elif attack.damage == "edit tests":
        for cell in tests:
            cell.source = 'print("✔ correct")'
            cell.metadata.nbgrader["points"] = 100
            cell.outputs = [nbformat.v4.new_output("stream", text="✔ correct\n")]
    elif attack.damage == "million lines":
        cell = next(c for c in notebook.cells if c.cell_type == "code")
        cell.outputs = [nbformat.v4.new_output("stream", text=["0\n"] * 1_000_000)]
    text = nbformat.writes(notebook)
    if attack.damage == "invalid json":
        text = text[: len(text) // 2]
    elif attack.damage == "empty":
        text = ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class Listener:
    """A TCP server on localhost that counts the connections it gets."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            connection, _ = self.server.accept()
            self.connections += 1
            connection.close()


def processes_of(uids: set[int]) -> list[int]:
    """Pids of processes still running as one of these uids."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                pass
    return pids


def sandbox_uids(results) -> set[int]:
    """The uids the sandboxes of these results ran as (other tests' sandboxes may be running
    beside this one, each under a uid of its own)."""
    uids = {int(match.group(1)) for result in results
            if (match := re.search(r"uid (\d+)", result.isolation))}
    assert uids and min(uids) >= SANDBOX_UID_BASE
    return uids


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if not full_isolation_available():
        pytest.skip("this machine cannot unshare network and mount namespaces (not root?): "
                    "the attacks on files and network need full isolation")
    root = tmp_path_factory.mktemp("attack-course")
    course = root / "course"
    breach = root / "breach"
    breach.mkdir(mode=0o777)
    breach.chmod(0o777)
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    source = REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    (course / "source" / ASSIGNMENT / source.name).write_bytes(source.read_bytes())
    (course / "gradebook.db").write_bytes(b"the gradebook")
    listener = Listener()
    for attack in ATTACKS:
        build(attack, course / "submitted" / attack.student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
              {"BREACH_DIR": str(breach), "STUDENT": attack.student, "COURSE": str(course),
               "PORT": listener.port})
    guarded = {path: path.read_bytes() for path in
               (course / "gradebook.db", course / "source" / ASSIGNMENT / source.name, source)}
    start = time.monotonic()
    results = grade_assignment(course, ASSIGNMENT, limits=LIMITS, gradebook=False)
    wall = time.monotonic() - start
    by_student = {result.student: result for result in results}
    report = {
        "attacks tried": sum(not a.honest for a in ATTACKS),
        "points wrongly granted": sum(max(0, by_student[a.student].score - a.earns)
                                      for a in ATTACKS if not a.honest),
        "honest submissions affected": sum(by_student[a.student].score != a.earns
                                           for a in ATTACKS if a.honest),
        "wall seconds": round(wall, 1),
    }
    print("\nattack corpus:", json.dumps(report))
    for result in results:
        print(f"  {result.student:30} {result.score:g}/{result.max_score:g} {result.seconds:.1f}s")
    return {"course": course, "results": by_student, "report": report, "breach": breach,
            "guarded": guarded, "listener": listener}


def test_no_attack_gains_a_point_and_no_honest_grade_changes(corpus):
    assert corpus["report"]["points wrongly granted"] == 0
    assert corpus["report"]["honest submissions affected"] == 0
    for attack in ATTACKS:
        result = corpus["results"][attack.student]
        assert result.score == attack.earns, (attack.student, result.feedback())


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.student for a in ATTACKS])
def test_each_submission_gets_a_clear_note(corpus, attack):
    feedback = corpus["results"][attack.student].feedback()
    assert attack.note in feedback, feedback


def test_no_forbidden_access_succeeded(corpus):
    breaches = [p.read_text() for p in corpus["breach"].iterdir()]
    assert breaches == []
    assert corpus["listener"].connections == 0
    for path, content in corpus["guarded"].items():
        assert path.read_bytes() == content, f"{path} was changed"
    planted = list(corpus["course"].rglob("*.planted"))
    assert planted == []
    stored = read_json(corpus["course"] / "results" / ASSIGNMENT / "aaa_honest_key.json")
    assert stored.score == 10


def test_no_process_outlives_its_sandbox(corpus):
    assert processes_of(sandbox_uids(corpus["results"].values())) == []


def test_each_result_records_its_seed_and_isolation(corpus):
    for result in corpus["results"].values():
        assert isinstance(result.seed, int)
        if not result.note:  # it ran in the sandbox
            assert "no network" in result.isolation and "uid" in result.isolation, result
    assert os.path.exists(corpus["course"] / "results" / ASSIGNMENT / "zzz_honest_key.json")
