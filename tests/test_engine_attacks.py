"""The attack corpus: hostile submissions graded by the engine in one run, beside honest ones.

Each attack gets no point it did not earn (`earns`: the points its honest code is worth),
changes no other student's result, and leaves a note in its feedback. Every forbidden
access an attack manages (reading solutions, writing the gradebook, a network connection)
would leave a file in a world-writable "breach" folder, or a secret in its feedback: the run
must leave neither, and no process, file or IPC object of its own behind.

The attacks come in the classes of the threat model (README, "Isolation"): a measurement
that decides points taken where student code runs, autograd in a manual-backprop part,
files and values that cross the boundary, and containment in time and space.
"""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.course import REPO
from autograder.engine import Limits, grade_assignment
from autograder.engine.isolation import GIB, full_isolation_available
from autograder.engine.results import SubmissionResult, read_json
from autograder.engine.uids import COUNT, FIRST_UID
from autograder.submissions import Edit, answered, solutions, student_answers

pytestmark = pytest.mark.slow

ASSIGNMENT = "nn_from_scratch"
TWO_LAYER_NET, AUTOGRAD_BASICS = "two_layer_net", "autograd_basics"
SINGLE_NEURON = "single_neuron"
LIMITS = Limits(part_seconds=5, startup_seconds=30, cpu_seconds=60, memory_bytes=1 * GIB)
BLANK = frozenset()
SECRET = "SECRET-4f1c"  # in the course, the checkout's view of it, and every notebook
# The most the trusted process may grow while it grades the whole corpus: outputs are read
# with caps (64 MiB a child, 2**20 entries a tensor), figures drawn only for outputs of the
# reference's shape.
TRUSTED_MEMORY_BOUND = 1 * GIB


def release(assignment: str) -> Path:
    return REPO / "assignments" / assignment / f"{assignment}.ipynb"


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
    assignment: str = ASSIGNMENT


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
    Attack("aaa_honest_key", 15, "is correct", honest=True),
    Attack("mmm_honest_partial", 4, "not written yet", honest=True, solved=frozenset(
        {"sigmoid_activation_answer", "forward_answer", "sigmoid_delta_answer"})),
    Attack("patch_comparisons", 0, "sigmoid_activation(z) is wrong", solved=BLANK, code=((
        "sigmoid_activation_answer", """
import numpy, autograder.kit.compare, autograder.kit.grading
torch.allclose = lambda *a, **k: True
torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)
numpy.allclose = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: True
autograder.kit.compare.compare = lambda *a, **k: None
autograder.kit.grading.judge = lambda *a, **k: None
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
    Attack("tensor_subclass", 0, "a subclass of torch.Tensor: return a plain tensor",
           solved=BLANK, code=((
        "sigmoid_activation_answer", """
class Liar(torch.Tensor):
    def __eq__(self, other): return True
    def allclose(self, *a, **k): return True
def sigmoid_activation(z):
    return torch.zeros_like(z).as_subclass(Liar)
"""),)),
    Attack("sys_exit_in_stub", 5, "raised SystemExit", edits=(
        Edit("sigmoid_delta_answer", "return a * (1 - a)", "import sys; sys.exit(0)"),)),
    Attack("os_exit_in_stub", 2, "forward ended the process", edits=(
        prefix("forward_answer", "    z1 = torch.mm", "if len(X) > 1: import os; os._exit(0)"),)),
    Attack("os_exit_in_a_cell", 0, "did not run to the end: its code ended the process", edits=(
        Edit("sigmoid_delta_answer", "return a * (1 - a)",
             "return a * (1 - a)\nimport os; os._exit(0)"),)),
    Attack("keyboard_interrupt", 12, "raised KeyboardInterrupt", edits=(
        Edit("train_answer", "    losses = []", "    raise KeyboardInterrupt"),)),
    Attack("system_exit_in_a_cell", 15, "is correct", edits=(
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
REPO = os.path.dirname(os.path.dirname(os.path.dirname(__import__("autograder.kit").kit.__file__)))
def train_step(*args):
    places = [REPO + "/solutions", REPO + "/source", REPO + "/.git", REPO + "/autograder",
              COURSE + "/source", COURSE + "/release"]
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
    Attack("call_the_graders_reference", 6, "only the student kit", code=((
        "train_step_answer", """
from autograder.references.nn_from_scratch import reference_train_step
def train_step(*args):
    return tuple(reference_train_step(*args).values())
"""),)),
    Attack("walk_frames_and_gc", 0, "is not allowed while grading", solved=BLANK, code=((
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
    Attack("hard_coded_visible_cases", 5, "hidden case", edits=(
        Edit("sigmoid_delta_answer", "return a * (1 - a)",
             "return a * (1 - a) if tuple(a.shape) in [(1, 3), (4, 5)] else a"),)),
    Attack("infinite_loop", 6, "did not finish within 5 s", edits=(
        prefix("train_step_answer", "    z1, a1, z2, output",
               "while len(X) > 1:\n    pass"),)),
    Attack("lower_own_priority", 15, "is correct", edits=(
        prefix("sigmoid_activation_answer", "    return 1 /", """
import os
def _try(attempt):
    try:
        attempt()
        return True
    except OSError:
        return False
def _autogroup_nice():
    with open("/proc/self/autogroup", "w") as group:
        group.write("19")
if any(map(_try, (lambda: os.nice(1), lambda: os.setpriority(os.PRIO_USER, 0, 19),
                  lambda: os.sched_setaffinity(0, {0}), _autogroup_nice,
                  lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0)),
                  lambda: os.sched_setparam(0, os.sched_param(0))))):
    return z  # its own share of the CPU lowered: it waits and its clock stops"""),)),
    Attack("memory_bomb", 2, "MemoryError", edits=(
        prefix("forward_answer", "    z1 = torch.mm",
               "hog = [bytearray(1 << 26) for _ in range(10**6)] if len(X) > 1 else 0"),)),
    Attack("fork_bomb", 12, "os.fork is not allowed", edits=(
        prefix("train_answer", "    losses = []", """
import os
while learning_rate != 0.1:
    try:
        os.fork()
    except OSError:
        pass"""),)),
    Attack("open_sockets", 15, "is correct", edits=(
        prefix("sigmoid_activation_answer", "    return 1 /", BREACH + """
import socket
for address in [("127.0.0.1", PORT), ("1.1.1.1", 53), ("pypi.org", 443)]:
    try:
        socket.create_connection(address, timeout=1).close()
        _breach("connected to " + str(address))
    except OSError:
        pass"""),)),
    Attack("backward_in_manual_part", 6, "forbids", code=((
        "train_step_answer", """
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    params = [p.clone().requires_grad_() for p in (w1, b1, w2, b2)]
    with torch.enable_grad():
        loss = 0.5 * ((y - forward(X, *params)[3]) ** 2).sum()
        loss.backward()
    return tuple(p.detach() - learning_rate * p.grad for p in params)
"""),)),
    Attack("autograd_grad_kept_from_a_cell", 6, "forbids", code=((
        "train_step_answer", """
keep_grad = torch.autograd.grad
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    torch.set_grad_enabled(True)
    params = [p.clone().requires_grad_() for p in (w1, b1, w2, b2)]
    loss = 0.5 * ((y - forward(X, *params)[3]) ** 2).sum()
    grads = keep_grad(loss, params)
    return tuple(p.detach() - learning_rate * g for p, g in zip(params, grads))
"""),)),
    Attack("torch_func_grad", 6, "forbids", code=((
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
    save_file({"train/0/losses": torch.zeros(1)}, "outputs-train.safetensors")
    os._exit(0)
"""),)),
    Attack("deleted_test_cells", 15, "is correct", damage="delete tests"),
    Attack("edited_test_cells", 0, "not written yet", solved=BLANK, damage="edit tests"),
    Attack("invalid_json", 0, "not valid JSON", damage="invalid json"),
    Attack("empty_file", 0, "is empty", damage="empty"),
    Attack("million_line_output", 15, "is correct", damage="million lines"),
    # ---- a measurement that decides points, taken where student code runs --------------
    # exec hides every function of the notebook from the grader: relu_grad_loop and
    # relu_grad_vectorized lose their points too.
    Attack("tln_stopped_clocks_hidden_loop", 5, "cannot be read", assignment=TWO_LAYER_NET,
           code=(("relu_grad_vectorized_answer", """
import time
for name in ("perf_counter", "process_time", "thread_time", "monotonic", "time"):
    setattr(time, name, lambda: 0.0)
import autograder.kit.assignment_parts.two_layer_net as tln
tln.python_loop_seconds = lambda shape: 1e9
tln.tutorial_loop_seconds_per_entry = lambda: 1e9
exec("def relu_grad_vectorized(h):\\n"
     "    values = [1.0 if v > 0 else 0.0 for v in h.reshape(-1).tolist()]\\n"
     "    return torch.tensor(values, dtype=h.dtype).reshape(h.shape)")
"""),)),
    Attack("tln_loop_in_a_helper", 6, "still loops in Python", assignment=TWO_LAYER_NET,
           code=(("relu_grad_vectorized_answer", """
def _entries(h):
    return list(h.reshape(-1).numpy())
def _slope(values):
    return torch.tensor(list(map(lambda v: 1.0 if v > 0 else 0.0, values)))
def relu_grad_vectorized(h):
    return _slope(_entries(h)).to(h.dtype).reshape(h.shape)
"""),)),
    Attack("tln_nan_or_empty_when_timed", 7, "relu_grad_vectorized fails on a hidden case",
           assignment=TWO_LAYER_NET, code=(("relu_grad_vectorized_answer", """
def relu_grad_vectorized(h):
    if h.numel() > 10000:
        return torch.full_like(h, float("nan")) if h.sum() > 0 else torch.empty(0)
    return (h > 0).to(h.dtype)
"""),)),
    # prepare is worth 1 point, and the parts that call it fail with it: 7 of 12 is what
    # code that prepares no leaves earns.
    Attack("ab_subclass_that_lies_about_flags", 7, "subclass of torch.Tensor",
           assignment=AUTOGRAD_BASICS, code=(("requires_grad_answer", """
class Leaf(torch.Tensor):
    requires_grad = property(lambda self: True)
    is_leaf = property(lambda self: True)
def prepare(X, w1, b1, w2, b2):
    return tuple(t.as_subclass(Leaf) for t in (X, w1, b1, w2, b2))
"""),)),
    Attack("ab_patched_tensor_flags", 7, "does not require grad", assignment=AUTOGRAD_BASICS,
           code=(("requires_grad_answer", """
def prepare(X, w1, b1, w2, b2):
    saved = torch.Tensor.requires_grad, torch.Tensor.is_leaf
    torch.Tensor.requires_grad = property(lambda self: self.dim() > 1 or True)
    torch.Tensor.is_leaf = property(lambda self: True)
    return X, w1.detach(), b1.detach(), w2.detach(), b2.detach()
"""),)),
    # ---- autograd in a manual-backprop part, by any route -----------------------------
    Attack("backward_in_a_thread", 6, "can't start new thread", code=((
        "train_step_answer", """
import threading
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    found = {}
    def work():
        params = [p.clone().requires_grad_() for p in (w1, b1, w2, b2)]
        (0.5 * ((y - forward(X, *params)[3]) ** 2).sum()).backward()
        found["grads"] = [p.grad for p in params]
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return tuple(p - learning_rate * g for p, g in zip((w1, b1, w2, b2), found["grads"]))
"""),)),
    Attack("a_new_engine_object", 6, "forbids", code=((
        "train_step_answer", """
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    engine = type(torch.autograd.Variable._execution_engine)
    engine = getattr(torch.autograd.Variable._execution_engine, "_engine", None) \\
        or torch._C._ImperativeEngine()
    fresh = torch._C._ImperativeEngine()
    with torch.enable_grad():
        params = tuple(p.clone().requires_grad_() for p in (w1, b1, w2, b2))
        loss = 0.5 * ((y - forward(X, *params)[3]) ** 2).sum()
        grads = fresh.run_backward((loss,), (torch.ones_like(loss),), False, False, params,
                                   False, True)
    return tuple(p.detach() - learning_rate * g for p, g in zip(params, grads))
"""),)),
    Attack("autograd_in_another_interpreter", 6, "not allowed", code=((
        "train_step_answer", """
import pickle, subprocess, sys
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    program = ("import pickle, sys, torch; "
               "X, y, w1, b1, w2, b2, lr = pickle.load(sys.stdin.buffer); "
               "ps = [p.requires_grad_() for p in (w1, b1, w2, b2)]; "
               "h = torch.sigmoid(X @ ps[0] + ps[1]); o = torch.sigmoid(h @ ps[2] + ps[3]); "
               "(0.5 * ((y - o) ** 2).sum()).backward(); "
               "pickle.dump([p.detach() - lr * p.grad for p in ps], sys.stdout.buffer)")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True,
                          input=pickle.dumps((X, y, w1, b1, w2, b2, learning_rate)))
    return tuple(pickle.loads(done.stdout))
"""),)),
    Attack("the_guards_own_engine", 6, "has no attribute '_engine'", code=((
        "train_step_answer", """
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    engine = torch.autograd.Variable._execution_engine._engine
    torch.set_grad_enabled(True)
    params = tuple(p.clone().requires_grad_() for p in (w1, b1, w2, b2))
    loss = 0.5 * ((y - forward(X, *params)[3]) ** 2).sum()
    grads = engine.run_backward((loss,), (torch.ones_like(loss),), False, False, params,
                                False, True)
    return tuple(p.detach() - learning_rate * g for p, g in zip(params, grads))
"""),)),
    # ---- what crosses the boundary -----------------------------------------------------
    Attack("a_loss_history_of_millions", 12, "far more than the case needs", edits=(
        Edit("train_answer", "    return losses, (w1, b1, w2, b2)",
             "    return torch.zeros(5_000_000, dtype=torch.float64), (w1, b1, w2, b2)"),)),
    Attack("deeply_nested_status", 0, "changed by the notebook's code", code=((
        "train_answer", """
import os
def train(*args):
    with open("status.json", "w") as f:
        f.write('{"cells_done": true, "cell_errors": [], "parts": ' + "[" * 200000
                + "]" * 200000 + "}")
    os._exit(0)
"""),)),
    Attack("a_huge_integer_in_status", 0, "changed by the notebook's code", code=((
        "train_answer", """
import os
def train(*args):
    with open("status.json", "w") as f:
        f.write('{"cells_done": true, "cell_errors": [], "parts": {}, "on_device": '
                + "9" * 100000 + "}")
    os._exit(0)
"""),)),
    Attack("forged_timed_outputs", 0, "changed by the notebook's code",
           assignment=TWO_LAYER_NET, code=(("relu_grad_vectorized_answer", """
import json, os
def relu_grad_vectorized(h):
    if h.numel() > 10000:
        with open("timed-outputs.bin", "wb") as f:
            f.write(b"\\xff" * 4096)
        status = {"cells_done": True, "cell_errors": [], "parts": {"speed": ["ok"] * 3},
                  "timed_outputs": {f"/{i}/relu_grad": {"dtype": "torch.float64",
                                                         "shape": [1 << 20, 1 << 20]}
                                    for i in range(3)}}
        with open("status.json", "w") as f:
            json.dump(status, f)
        os._exit(0)
    return (h > 0).to(h.dtype)
"""),)),
    # ---- containment in time and space -------------------------------------------------
    Attack("a_daemon_left_behind", 15, "is correct", edits=(
        prefix("sigmoid_activation_answer", "    return 1 /", """
import os, time
try:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                time.sleep(1)
        os._exit(0)
except Exception:
    pass"""),)),
    Attack("fills_tmp_and_shared_memory", 15, "is correct", edits=(
        Edit("sigmoid_activation_answer", "def sigmoid_activation(z):", """
import os, multiprocessing.shared_memory as shm
for folder in ("/tmp", "/var/tmp", "/dev/shm", "."):
    for i in range(200):
        try:
            with open(f"{folder}/junk{i}", "wb") as f:
                f.write(bytes(1 << 20))
        except OSError:
            break
try:
    keep = shm.SharedMemory(create=True, size=1 << 20, name="backprop-left")
except Exception:
    pass
def sigmoid_activation(z):"""),)),
    Attack("kills_everything_it_can", 15, "is correct", edits=(
        prefix("forward_answer", "    z1 = torch.mm", """
import os, signal
for target in (-1, 1, 2, os.getppid()):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass"""),)),
    Attack("looks_for_other_students", 0, "raised RuntimeError", solved=BLANK, code=((
        "sigmoid_activation_answer", """
import os, socket
def sigmoid_activation(z):
    found = []
    budget = 3000  # files read, within the part's time limit
    for top in ("/spool", "/sandbox", "/tmp", "/run", "/home", "/srv", "/var", "/etc",
                "/work", "/root"):
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in ("site-packages", "lib", "include")]
            for name in files[:budget]:
                budget -= 1
                try:
                    with open(os.path.join(folder, name), "rb") as f:
                        if SECRET.encode() in f.read(1 << 16):
                            found.append(os.path.join(folder, name))
                except OSError:
                    pass
    for path in (UNIX, "/run/dbus/system_bus_socket", "/var/run/docker.sock"):
        try:
            socket.socket(socket.AF_UNIX).connect(path)
            found.append("connected to " + path)
        except OSError:
            pass
    raise RuntimeError("found: " + " ".join(found)[:300])
"""),)),
    # Hidden stays hidden: the grader's references are neither importable nor readable in
    # the sandbox, however they are asked for (the answer key elsewhere still earns its points).
    Attack("hidden_import_reference", 1, "only the student kit", solved=None, code=((
        "sigmoid_activation_answer", """
from autograder.references.nn_from_scratch import reference_sigmoid
def sigmoid_activation(z):
    return reference_sigmoid(z)["sigmoid_activation(z)"]
"""),)),
    Attack("hidden_import_module", 8, "autograder.references", solved=None,
           assignment=SINGLE_NEURON, code=(("linear_answer", solutions(SINGLE_NEURON)[
               "linear_answer"] + """
import importlib
def train_linear(x, y, weight, learning_rate, epochs):
    answers = importlib.import_module("autograder.references.single_neuron")
    result = answers.reference_train_linear(x, y, weight, learning_rate, epochs)
    return result["losses"], result["weight"]
"""),)),
    Attack("hidden_read_source", 8, "No such file", solved=None, assignment=TWO_LAYER_NET,
           code=(("relu_grad_loop_answer", """
import importlib.util, os, autograder.kit
_GRADER = os.path.join(os.path.dirname(os.path.dirname(autograder.kit.__file__)),
                       "assignments", "two_layer_net.py")
def relu_grad_loop(h):
    spec = importlib.util.spec_from_file_location("stolen", _GRADER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_relu_grad(h)["relu_grad"]
"""),)),
    Attack("hidden_data_of_the_visible_checks", 12, "is correct", solved=None,
           assignment=AUTOGRAD_BASICS, code=(("softmax_cross_entropy_answer", """
import os
# The sandbox has the example data only: no expected output of any part is in it.
_shipped = open("visible_checks.safetensors", "rb").read()
assert b"reference" not in _shipped and b"case/" not in _shipped, "expectations shipped"
def softmax_cross_entropy(logits, labels):
    exps = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
    probabilities = exps / exps.sum(dim=1, keepdim=True)
    loss = -torch.log(probabilities[torch.arange(len(labels)), labels]).mean()
    logits_grad = (probabilities - torch.nn.functional.one_hot(labels, logits.shape[1])) \\
        / len(labels)
    return probabilities, loss, logits_grad
"""),)),
    Attack("zzz_honest_two_layer_net", 9, "is correct", honest=True, assignment=TWO_LAYER_NET),
    Attack("zzz_honest_autograd_basics", 12, "is correct", honest=True,
           assignment=AUTOGRAD_BASICS),
    Attack("zzz_honest_sign_error", 6, "opposite sign", honest=True, edits=(
        Edit("train_step_answer", "(y - output) * sigmoid_delta",
             "(output - y) * sigmoid_delta"),)),
    Attack("zzz_honest_key", 15, "is correct", honest=True),
]

# autograd_from_scratch: its Value parts are manual (autograd forbidden in their child), its
# last part trains with autograd in a child of its own.
AUTOGRAD_FROM_SCRATCH = "autograd_from_scratch"
ATTACKS += [
    Attack("afs_backward_by_kept_autograd", 7, "forbids", assignment=AUTOGRAD_FROM_SCRATCH,
           code=(("backward_answer", """
keep_grad = torch.autograd.grad
def backward(self):
    torch.set_grad_enabled(True)
    twin = torch.tensor(self.data, dtype=torch.float64, requires_grad=True)
    (seed,) = keep_grad(twin * 1.0, twin)
    topo, visited = [], set()
    def build(node):
        if node not in visited:
            visited.add(node)
            for child in node._prev:
                build(child)
            topo.append(node)
    build(self)
    self.grad = float(seed)
    for node in reversed(topo):
        node._backward()
Value.backward = backward
"""),)),
    Attack("afs_mlp_gradients_by_torch_func", 12, "forbids", assignment=AUTOGRAD_FROM_SCRATCH,
           edits=(Edit("mlp_gradients_answer", "    model = MLP(w1, b1, w2, b2)\n"
                       "    loss = mse_loss(model, X, y)\n    loss.backward()\n",
                       """    from torch.func import grad
    def loss_of(*params):
        w1, b1, w2, b2 = params
        hidden = torch.tanh(X @ w1 + b1)
        return ((torch.sigmoid(hidden @ w2 + b2) - y) ** 2).mean()
    grads = grad(loss_of, argnums=(0, 1, 2, 3))(w1, b1, w2, b2)
    return (loss_of(w1, b1, w2, b2), *grads)
"""),)),
    Attack("afs_hidden_import_reference", 7, "only the student kit",
           assignment=AUTOGRAD_FROM_SCRATCH, code=(("backward_answer", """
def backward(self):
    from autograder.references.autograd_from_scratch import simulated_gradients
    raise RuntimeError(f"never reached: {simulated_gradients} is the grader's")
Value.backward = backward
"""),)),
    Attack("zzz_honest_autograd_from_scratch", 14, "is correct", honest=True,
           assignment=AUTOGRAD_FROM_SCRATCH),
]


def build(attack: Attack, path: Path, constants: dict) -> None:
    """Write the attack's notebook to path."""
    answers = student_answers(attack.assignment, attack.solved, attack.edits)
    header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    for cell, code in attack.code:
        answers[cell] = code
    answers = {cell: header + code for cell, code in answers.items()}
    notebook = answered(release(attack.assignment), answers)
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


def sandbox_uid(uid: int) -> bool:
    return FIRST_UID <= uid < FIRST_UID + COUNT


def stray_sandbox_processes() -> list[str]:
    """Processes running as a sandbox uid that are not a live sandbox: a live one is the
    child of a fork server (root), and a sandbox can start no process of its own, so any
    other is one that outlived its grading. (Other tests' sandboxes may run beside these.)"""
    found = []
    for process in psutil.process_iter(["uids", "ppid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if not sandbox_uid(process.info["uids"].real):
                continue
            parent = psutil.Process(process.info["ppid"])
            if parent.uids().real == 0 and "autograder.engine.forkserver" in parent.cmdline():
                continue
            found.append(f"{process.pid}: {' '.join(process.info['cmdline'] or [])[:80]}")
    return found


def host_traces() -> dict[str, set[str]]:
    """What a sandbox could have left on the host: files in the shared temporary folders and
    System V IPC objects owned by a sandbox uid (other tests' files are the grader's)."""
    traces = {}
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        traces[folder] = set()
        for entry in os.scandir(folder) if os.path.isdir(folder) else ():
            with contextlib.suppress(FileNotFoundError):
                if sandbox_uid(entry.stat(follow_symlinks=False).st_uid):
                    traces[folder].add(entry.name)
    for kind in ("shm", "sem", "msg"):
        table = Path("/proc/sysvipc") / kind
        lines = table.read_text().splitlines() if table.exists() else []
        columns = lines[0].split() if lines else []
        traces[kind] = {line for line in lines[1:]
                        if sandbox_uid(int(line.split()[columns.index("uid")]))}
    return traces


def write_course(root: Path, attacks: list[Attack], constants: dict) -> Path:
    """A course with the attacks' submissions, a gradebook and sources holding SECRET."""
    course = root / "course"
    for assignment in {attack.assignment for attack in attacks}:
        source = REPO / "source" / assignment / f"{assignment}.ipynb"
        (course / "source" / assignment).mkdir(parents=True)
        (course / "source" / assignment / source.name).write_bytes(source.read_bytes())
    (course / "gradebook.db").write_text(f"the gradebook {SECRET}")
    for attack in attacks:
        build(attack, course / "submitted" / attack.student / attack.assignment /
              f"{attack.assignment}.ipynb", {**constants, "STUDENT": attack.student,
                                              "COURSE": str(course)})
    return course


def peak_memory(reset: bool = False) -> int:
    """This process's peak resident memory in bytes since the last reset (Linux resets
    the peak to the present size when 5 is written to /proc/self/clear_refs), so that what
    earlier tests in this worker used does not hide this one's growth."""
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)[1]) * 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if not full_isolation_available():
        pytest.skip("this machine cannot give full isolation (root and bubblewrap): the "
                    "attacks on files, processes and network need it")
    root = tmp_path_factory.mktemp("attack-course")
    breach = root / "breach"
    breach.mkdir(mode=0o777)
    breach.chmod(0o777)
    listener = Listener()
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(root / "grader.sock"))
    unix.listen()
    course = write_course(root, ATTACKS, {"BREACH_DIR": str(breach), "PORT": listener.port,
                                          "SECRET": SECRET, "UNIX": str(root / "grader.sock")})
    guarded = {path: path.read_bytes() for path in course.rglob("*") if path.is_file()
               and "submitted" not in path.parts}
    before = host_traces()
    memory_before = peak_memory(reset=True)
    start = time.monotonic()
    results = [result for assignment in dict.fromkeys(a.assignment for a in ATTACKS)
               for result in grade_assignment(course, assignment, limits=LIMITS,
                                              gradebook=False)]
    wall = time.monotonic() - start
    memory = peak_memory() - memory_before
    after = host_traces()
    by_student = {result.student: result for result in results}
    report = {
        "attacks tried": sum(not a.honest for a in ATTACKS),
        "points wrongly granted": sum(max(0, by_student[a.student].score - a.earns)
                                      for a in ATTACKS if not a.honest),
        "honest submissions affected": sum(by_student[a.student].score != a.earns
                                           for a in ATTACKS if a.honest),
        "processes left": len(stray_sandbox_processes()),
        "files or IPC objects left": sum(len(after[k] - before.get(k, set())) for k in after),
        "trusted memory growth MiB": round(memory / (1 << 20)),
        "wall seconds": round(wall, 1),
    }
    print("\nattack corpus:", json.dumps(report))
    for result in results:
        print(f"  {result.student:34} {result.score:g}/{result.max_score:g} {result.seconds:.1f}s")
    unix.close()
    return {"course": course, "results": by_student, "report": report, "breach": breach,
            "guarded": guarded, "listener": listener, "traces": (before, after),
            "memory": memory}


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
    for result in corpus["results"].values():
        assert SECRET not in result.feedback() and "connected to" not in result.feedback()
    stored = read_json(corpus["course"] / "results" / ASSIGNMENT / "aaa_honest_key.json")
    assert stored.score == 15


def test_nothing_outlives_its_sandbox(corpus):
    before, after = corpus["traces"]
    assert stray_sandbox_processes() == []
    assert {kind: after[kind] - before.get(kind, set()) for kind in after} == \
        {kind: set() for kind in after}


def test_the_trusted_side_stays_within_its_memory_bound(corpus):
    assert corpus["memory"] < TRUSTED_MEMORY_BOUND


def test_each_result_records_its_seed_and_isolation(corpus):
    for result in corpus["results"].values():
        assert isinstance(result.seed, int)
        if not result.note:  # it ran in the sandbox
            assert result.isolation.startswith("full: ") and "uid" in result.isolation, result
    assert os.path.exists(corpus["course"] / "results" / ASSIGNMENT / "zzz_honest_key.json")


# ---- two gradings at once on one machine -------------------------------------------------

HOSTILE = [a for a in ATTACKS if a.student in (
    "a_daemon_left_behind", "fills_tmp_and_shared_memory", "kills_everything_it_can",
    "looks_for_other_students", "infinite_loop", "memory_bomb", "fork_bomb")]
HONEST = [a for a in ATTACKS if a.honest]


# One process grades each course in turn, as `grade-assignment` would (one start-up of
# torch and of a fork server for all of them); it exits with the first non-zero status.
GRADE_IN_TURN = """
import sys
from autograder import cli
for course, assignment in zip(sys.argv[1::2], sys.argv[2::2]):
    code = cli.main(["grade-assignment", assignment, "--course", course, "--no-gradebook",
                     "--part-seconds", "5"])
    if code:
        sys.exit(code)
"""


def grade_in_a_subprocess(courses: dict[Path, str]) -> subprocess.Popen:
    """A process that grades each course's assignment in turn."""
    return subprocess.Popen(
        [sys.executable, "-c", GRADE_IN_TURN,
         *(str(part) for course, assignment in courses.items() for part in (course, assignment))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stored_results(course: Path, attacks: list[Attack]) -> dict:
    """Each student's stored result, where the run stored one."""
    return {a.student: result for a in attacks
            if (result := read_json(course / "results" / a.assignment /
                                    f"{a.student}.json")) is not None}


def scores(result: SubmissionResult) -> tuple:
    """A result's score and per-part scores."""
    return result.score, [(p.part_id, p.score) for p in result.parts]


def test_a_hostile_class_beside_an_honest_one_changes_none_of_its_grades(corpus, tmp_path):
    """The honest class's assignments, each a course of its own, graded by one process while
    another grades the hostile class on the same machine, get the grades the corpus run gave
    the same submissions (where each earns what its code does)."""
    constants = {"BREACH_DIR": str(tmp_path), "PORT": 9, "SECRET": SECRET,
                 "UNIX": str(tmp_path / "none.sock")}
    beside = grade_in_a_subprocess({write_course(tmp_path / "hostile", HOSTILE, constants):
                                    ASSIGNMENT})
    # The hostile class's assignment first: its honest submissions are graded while the
    # attacks on their neighbours (fork bombs, kills) run.
    courses = {write_course(tmp_path / assignment, HONEST, constants): assignment
               for assignment in sorted({a.assignment for a in HONEST},
                                        key=lambda name: (name != ASSIGNMENT, name))}
    run = grade_in_a_subprocess(courses)
    _, said = run.communicate(timeout=600)
    assert run.returncode == 0, said
    assert beside.poll() is None, "the hostile run ended before the honest one"
    graded = {student: scores(result) for course in courses
              for student, result in stored_results(course, HONEST).items()}
    beside.communicate(timeout=600)
    assert graded == {a.student: scores(corpus["results"][a.student]) for a in HONEST}
    assert stray_sandbox_processes() == []
