"""The grading engine's pieces: the autograd guard, the file protocol, the isolation of a
child process, and one notebook graded through the command line."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import HIDDEN_SEED, command_here
from safetensors.torch import load, save

from autograder.course import REPO
from autograder.engine import grade_notebook, protocol
from autograder.engine.child import run_cells
from autograder.engine.isolation import full_isolation_available, kept_paths
from autograder.engine.uids import FIRST_UID
from autograder.kit import manual_backprop
from autograder.kit.diagnosis import Finding
from autograder.kit.parts import Case
from autograder.references import nn_from_scratch as nn
from autograder.references.graded import grade_with_references
from autograder.submissions import answered, student_answers

SOLUTION = REPO / "solutions" / "nn_from_scratch" / "nn_from_scratch.ipynb"
FULL_ISOLATION = pytest.mark.skipif(
    not full_isolation_available(),
    reason="needs root and bubblewrap (apt-get install bubblewrap) for full isolation")


def grade(part_id, function):
    part = nn.ASSIGNMENT.part(part_id)
    return grade_with_references(part, function, part.cases("hidden", HIDDEN_SEED))


# ---- autograd is unavailable to manual-backprop parts ------------------------------------

def autograd_step(nn_solution, how):
    forward = nn_solution["forward"]

    def train_step(X, y, w1, b1, w2, b2, learning_rate):
        params = [p.clone().requires_grad_() for p in (w1, b1, w2, b2)]
        with torch.enable_grad():
            loss = 0.5 * ((y - forward(X, *params)[3]) ** 2).sum()
            if how == "backward":
                loss.backward()
                grads = [p.grad for p in params]
            else:
                grads = torch.autograd.grad(loss, params)
        return tuple(p.detach() - learning_rate * g for p, g in zip(params, grads, strict=True))

    return train_step


@pytest.mark.parametrize("how", ["backward", "autograd.grad"])
def test_a_manual_backprop_part_cannot_use_autograd(nn_solution, how):
    result = grade("train_step", autograd_step(nn_solution, how))
    assert result.score == 0
    assert "train_step used autograd" in result.message and "forbids" in result.message


def test_the_guard_blocks_torch_func_and_forward_mode_too():
    def jvp_delta(a):
        z = torch.logit(a)
        return torch.func.jvp(torch.sigmoid, (z,), (torch.ones_like(z),))[1]

    def func_grad_delta(a):
        return torch.vmap(torch.func.grad(torch.sigmoid))(torch.logit(a).flatten()).view_as(a)

    for stub in (jvp_delta, func_grad_delta):
        assert "forbids" in grade("sigmoid_delta", stub).message


def test_autograd_works_again_after_the_part(nn_solution):
    assert grade("train_step", nn_solution["train_step"]).passed
    x = torch.ones(2, requires_grad=True)
    (x * x).sum().backward()
    assert torch.equal(x.grad, torch.full((2,), 2.0))
    with pytest.raises(manual_backprop.AutogradForbidden), manual_backprop.forbidden("f"), \
            torch.enable_grad():
        (torch.ones(2, requires_grad=True) * 2).sum().backward()


# ---- the protocol reads only what an honest child writes ---------------------------------

SIGMOID = nn.ASSIGNMENT.part("sigmoid_activation")


def child_files(tmp_path, status_parts, tensors):
    protocol.write_progress(tmp_path, {"cells_done": True, "cell_errors": [],
                                       "parts": status_parts}, tensors)
    return protocol.read_status(tmp_path)


def read(tmp_path, status, device=protocol.CPU):
    return protocol.read_outcomes(tmp_path, [SIGMOID], {SIGMOID.id: 2}, status, device)


def every_output(index, tensor):
    """One case's outputs as the child writes them: the student's, then what the call left
    in its inputs (`Part.output_names`), each here a copy of the given tensor."""
    return {protocol.key(SIGMOID.id, index, name): tensor.clone()
            for name in SIGMOID.output_names()}


def test_outcomes_are_read_back_as_plain_tensors(tmp_path):
    name = SIGMOID.output_names()[0]
    raised = protocol.failure(Finding("it raised", "exception"))
    forged = {"message": "it raised", "mistake": "a name the grader never gives"}
    status = child_files(tmp_path, {SIGMOID.id: ["ok", raised]},
                         every_output(0, torch.zeros(3, dtype=torch.float64)))
    first, second = read(tmp_path, status)[SIGMOID.id]
    assert type(first[name]) is torch.Tensor and first[name].shape == (3,)
    assert second == Finding("it raised", "exception")
    again = tmp_path / "again"  # another child's working directory
    again.mkdir()
    status = child_files(again, {SIGMOID.id: [forged]}, {})
    assert read(again, status)[SIGMOID.id] == [Finding("it raised", None)]


def test_outputs_go_back_to_the_device_the_child_had_them_on(tmp_path):
    name = SIGMOID.output_names()[0]
    on_gpu = protocol.key(SIGMOID.id, 0, name)
    status = child_files(tmp_path, {SIGMOID.id: ["ok", "ok"]},
                         {**every_output(0, torch.zeros(3, dtype=torch.float64)),
                          **every_output(1, torch.zeros(3, dtype=torch.float64))})
    status["on_device"] = [on_gpu]  # as the child records an output on the inputs' GPU
    first, second = read(tmp_path, status, device=torch.device("meta"))[SIGMOID.id]
    assert first[name].device.type == "meta" and second[name].device.type == "cpu"


def test_every_plain_dtype_crosses_as_safetensors_writes_it():
    tensors = {name: protocol.own_copy(torch.arange(6).reshape(2, 3).to(dtype))
               for name, dtype in protocol.PLAIN_DTYPES.items()}
    tensors["empty"] = torch.zeros(0, 2, dtype=torch.float64)
    for some in ({n: t for n, t in tensors.items() if n != "torch.bfloat16"}, tensors):
        assert protocol.serialised(some) == save(some)  # the file safetensors' writer makes
        back = load(protocol.serialised(some))
        assert all(back[n].dtype == t.dtype and torch.equal(back[n], t)
                   for n, t in some.items())


def test_tensors_that_share_memory_cross_as_copies(tmp_path):
    weight = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    shared = {SIGMOID.id: [Case("one", {"z": weight}), Case("two", {"z": weight[0]})]}
    protocol.write_request(tmp_path, "nn_from_scratch", shared, {})
    _, cases = protocol.read_request(tmp_path)
    assert torch.equal(cases[SIGMOID.id][1].args["z"], weight[0])
    name = SIGMOID.output_names()[0]
    returned = {**every_output(0, protocol.own_copy(weight)),
                **every_output(1, protocol.own_copy(weight))}  # one tensor returned twice
    status = child_files(tmp_path, {SIGMOID.id: ["ok", "ok"]}, returned)
    weight.zero_()  # the student's code changing a tensor it returned changes no output
    first, second = read(tmp_path, status)[SIGMOID.id]
    assert first[name].sum() == second[name].sum() == 15


@pytest.mark.parametrize("parts, tensors, problem", [
    ({"sigmoid_activation": ["ok", "ok"]}, {"sigmoid_activation/0/sigmoid_activation(z)":
                                            torch.zeros(1)}, "lacks"),
    ({"sigmoid_activation": ["ok"] * 3}, {}, "lists 3 results"),
    ({"sigmoid_activation": ["ok", "ok"]}, {"elsewhere/0/x": torch.zeros(1)}, "lacks"),
    ({"sigmoid_activation": [{"message": "failed", "mistake": None}]},
     {"sigmoid_activation/0/sigmoid_activation(z)": torch.zeros(1)}, "unexpected"),
])
def test_files_an_honest_child_never_writes_are_refused(tmp_path, parts, tensors, problem):
    status = child_files(tmp_path, parts, tensors)
    with pytest.raises(protocol.Tampered, match=problem):
        read(tmp_path, status)


def test_a_parts_file_holds_that_parts_outputs_only(tmp_path):
    status = child_files(tmp_path, {SIGMOID.id: ["ok", "ok"]},
                         {**every_output(0, torch.zeros(1)), **every_output(1, torch.zeros(1))})
    (tmp_path / protocol.outputs_file(SIGMOID.id)).write_bytes(save(
        {**every_output(0, torch.zeros(1)), **every_output(1, torch.zeros(1)),
         "forward/0/z1": torch.zeros(1)}))
    with pytest.raises(protocol.Tampered, match="unexpected"):
        read(tmp_path, status)


def test_links_oversized_and_malformed_files_are_refused(tmp_path):
    (tmp_path / protocol.STATUS).symlink_to("/etc/passwd")
    with pytest.raises(protocol.Tampered, match="cannot be opened"):
        protocol.read_status(tmp_path)
    (tmp_path / protocol.STATUS).unlink()
    (tmp_path / protocol.STATUS).write_text('{"cells_done": "yes"}')
    with pytest.raises(protocol.Tampered, match="fields"):
        protocol.read_status(tmp_path)
    (tmp_path / protocol.STATUS).write_text('{"cells_done": true, "cell_errors": [], '
                                            '"parts": {"forward": [{"message": 1}]}}')
    with pytest.raises(protocol.Tampered, match="fields"):
        protocol.read_status(tmp_path)
    outputs = tmp_path / protocol.outputs_file(SIGMOID.id)
    outputs.write_bytes(b"\xff" * 64)
    with pytest.raises(protocol.Tampered, match="cannot be read"):
        read(tmp_path, {"cells_done": True, "cell_errors": [], "parts": {SIGMOID.id: ["ok"]}})
    outputs.write_bytes(save({"a": torch.zeros(1)}) + b" " * (1 << 10))
    with pytest.raises(protocol.Tampered):
        protocol.read_capped(outputs, 1 << 9)


# ---- isolation of a child process --------------------------------------------------------

PROBE = """
import json, os, socket, threading, subprocess, sys
from pathlib import Path
def works(action):
    try:
        action()
        return 1
    except Exception:
        return 0
def sigmoid_activation(z):
    found = {
        "uid": os.getuid(), "pid": os.getpid(),
        "pids": len([p for p in os.listdir("/proc") if p.isdigit()]),
        "root": sorted(os.listdir("/")), "cwd": os.getcwd(),
        "tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm")),
        "seen": [p for p in PATHS if os.path.exists(p)],
        "lists": {p: sorted(os.listdir(p)) for p in LISTS if os.path.isdir(p)},
        "tcp": works(lambda: socket.create_connection(("127.0.0.1", PORT), 2)),
        "unix": works(lambda: socket.socket(socket.AF_UNIX).connect(UNIX)),
        "fork": works(lambda: os.fork() or os._exit(0)),
        "thread": works(lambda: threading.Thread(target=print).start()),
        "spawn": works(lambda: subprocess.run(["/bin/true"])),
        "ctypes": works(lambda: __import__("ctypes").CDLL(None).getpid()),
        "big_tmp": works(lambda: open("/tmp/big", "wb").write(bytes(40 << 20))),
        "workdir": works(lambda: open("out.txt", "w").write("ok")),
        "env": sorted(os.environ),
    }
    raise RuntimeError("PROBE" + json.dumps(found, separators=(",", ":")))
"""


def probe_in_sandbox(tmp_path, **constants):
    """What a student's code sees from inside the sandbox (its findings come back in the
    message of the part it fails)."""
    header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    answers = student_answers("nn_from_scratch")
    answers["sigmoid_activation_answer"] = header + PROBE
    path = tmp_path / "probe.ipynb"
    nbformat.write(answered(REPO / "assignments" / "nn_from_scratch" / "nn_from_scratch.ipynb",
                            answers), path)
    result = grade_notebook(path, "nn_from_scratch")
    message = result.parts[0].message
    return json.loads(message[message.index("PROBE") + 5:message.rindex("}") + 1]), result


@FULL_ISOLATION
def test_a_sandboxed_child_sees_only_its_workdir_and_can_start_nothing(tmp_path):
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    listener = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "host.sock"))
    unix.listen()
    found, result = probe_in_sandbox(
        tmp_path, PORT=listener.getsockname()[1], UNIX=str(tmp_path / "host.sock"),
        PATHS=[str(course), str(REPO / "solutions"), str(REPO / "source"), str(REPO / ".git"),
               str(tmp_path), "/run", "/home", "/srv", "/etc/passwd"],
        LISTS=["/spool", str(REPO), str(Path.home())])
    listener.close()
    unix.close()
    assert result.isolation.startswith("full:"), result.isolation
    assert found["uid"] >= FIRST_UID and found["pid"] == 1 and found["pids"] == 1
    assert found["seen"] == [] and found["cwd"] == "/sandbox"
    # Only what Python and the grader's package need, even where they sit in the checkout.
    kept = {Path(sys.prefix), Path(sys.base_prefix), REPO / "autograder"}
    for folder, names in found["lists"].items():
        assert all(Path(folder) / name in kept or any((Path(folder) / name) in k.parents
                                                     for k in kept) for name in names), folder
    assert set(found["root"]) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "etc", "sys",
                                   "proc", "dev", "tmp", "var", "sandbox", "spool",
                                   *Path(sys.base_prefix).parts[1:2],
                                   *Path(sys.prefix).parts[1:2], *REPO.parts[1:2]}
    # big: from an earlier call; and where Python or the checkout sit below /tmp, their path
    under_tmp = {k.relative_to("/tmp").parts[0] for k in kept_paths() if Path("/tmp") in k.parents}
    assert set(found["tmp"]) <= {"big", *under_tmp} and found["shm"] == []
    assert not any(found[k] for k in ("tcp", "unix", "fork", "thread", "spawn", "ctypes",
                                      "big_tmp"))
    assert found["workdir"]
    assert set(found["env"]) == {"PATH", "HOME", "TMPDIR", "LANG", "OMP_NUM_THREADS"}


def test_as_root_without_bubblewrap_the_engine_refuses_to_grade(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a user without root grades in a degraded sandbox instead")
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(SOLUTION),
                           "--assignment", "nn_from_scratch"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PATH": str(Path(sys.executable).parent)})
    assert done.returncode != 0 and "bubblewrap is not installed" in done.stderr


# ---- one notebook through the command line -----------------------------------------------

def grade_command(*args):
    done = command_here("grade", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_grade_json_prints_one_object_and_reproduces_with_its_seed(tmp_path):
    first = json.loads(grade_command(str(SOLUTION), "--assignment", "nn_from_scratch", "--json",
                                     "--gradescope", str(tmp_path / "results.json")))
    assert first["assignment"] == "nn_from_scratch" and isinstance(first["seed"], int)
    assert [p["id"] for p in first["parts"]] == [p.id for p in nn.ASSIGNMENT.parts]
    assert all(p["score"] == p["max_score"] > 0 and p["message"] for p in first["parts"])
    gradescope = json.loads((tmp_path / "results.json").read_text())
    assert gradescope["score"] == 15 and len(gradescope["tests"]) == 7
    # Reproduced by a process of its own: none of this one's memoised references.
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(SOLUTION),
                           "--assignment", "nn_from_scratch", "--json", "--seed",
                           str(first["seed"])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout)
    assert again["seed"] == first["seed"] and again["parts"] == first["parts"]


def test_a_missing_or_broken_notebook_scores_zero_with_its_reason(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    for path, reason in ((tmp_path / "none.ipynb", "no notebook named none.ipynb"),
                         (broken, "not valid JSON (line 1")):
        result = json.loads(grade_command(str(path), "--assignment", "nn_from_scratch",
                                          "--json"))
        assert result["score"] == 0 and reason in result["note"]



def test_notebook_cells_run_like_a_kernel_without_their_magics():
    namespace, errors = run_cells([
        "%matplotlib inline\n!pip install nothing\nimport torch",
        "%%time\ndef sigmoid_activation(z):\n    return 1 / (1 + torch.exp(-z))",
        "raise SystemExit(0)",
        "print(undefined)",
    ])
    assert callable(namespace["sigmoid_activation"])
    assert errors == ["code cell 3 raised SystemExit: 0",
                      "code cell 4 raised NameError: name 'undefined' is not defined"]
