"""The grading engine's pieces: the autograd guard, the file protocol, the isolation of a
child process, and one notebook graded through the command line."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from autograder import manual_backprop
from autograder.assignments import nn_from_scratch as nn
from autograder.course import REPO
from autograder.diagnosis import Finding
from autograder.engine import grade_notebook, protocol
from autograder.engine.child import run_cells
from autograder.engine.isolation import SANDBOX_UID_BASE, full_isolation_available
from autograder.engine.sandbox import GraderError
from autograder.grading import grade_part
from autograder.notebook import HIDDEN_SEED
from autograder.parts import Case

SOLUTION = REPO / "solutions" / "nn_from_scratch" / "nn_from_scratch.ipynb"
FULL_ISOLATION = pytest.mark.skipif(
    not full_isolation_available(),
    reason="needs root (or CAP_SYS_ADMIN) to unshare network and mount namespaces")


def grade(part_id, function):
    part = nn.ASSIGNMENT.part(part_id)
    return grade_part(part, function, part.cases("hidden", HIDDEN_SEED))


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


def test_outcomes_are_read_back_as_plain_tensors(tmp_path):
    name = SIGMOID.output_names()[0]
    raised = protocol.failure(Finding("it raised", "exception"))
    forged = {"message": "it raised", "mistake": "a name the grader never gives"}
    status = child_files(tmp_path, {SIGMOID.id: ["ok", raised]},
                         {protocol.key(SIGMOID.id, 0, name): torch.zeros(3, dtype=torch.float64)})
    first, second = read(tmp_path, status)[SIGMOID.id]
    assert type(first[name]) is torch.Tensor and first[name].shape == (3,)
    assert second == Finding("it raised", "exception")
    status = child_files(tmp_path, {SIGMOID.id: [forged]}, {})
    assert read(tmp_path, status)[SIGMOID.id] == [Finding("it raised", None)]


def test_outputs_go_back_to_the_device_the_child_had_them_on(tmp_path):
    name = SIGMOID.output_names()[0]
    on_gpu, on_cpu = (protocol.key(SIGMOID.id, index, name) for index in (0, 1))
    status = child_files(tmp_path, {SIGMOID.id: ["ok", "ok"]},
                         {k: torch.zeros(3, dtype=torch.float64) for k in (on_gpu, on_cpu)})
    status["on_device"] = [on_gpu]  # as the child records an output on the inputs' GPU
    first, second = read(tmp_path, status, device=torch.device("meta"))[SIGMOID.id]
    assert first[name].device.type == "meta" and second[name].device.type == "cpu"


def test_tensors_that_share_memory_cross_as_copies(tmp_path):
    weight = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    shared = {SIGMOID.id: [Case("one", {"z": weight}), Case("two", {"z": weight[0]})]}
    protocol.write_request(tmp_path, "nn_from_scratch", shared, {})
    _, cases = protocol.read_request(tmp_path)
    assert torch.equal(cases[SIGMOID.id][1].args["z"], weight[0])
    name = SIGMOID.output_names()[0]
    returned = {protocol.key(SIGMOID.id, index, name): protocol.own_copy(weight)
                for index in (0, 1)}  # one tensor returned twice
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
     {"forward/0/z1": torch.zeros(1)}, "unexpected"),
])
def test_files_an_honest_child_never_writes_are_refused(tmp_path, parts, tensors, problem):
    status = child_files(tmp_path, parts, tensors)
    with pytest.raises(protocol.Tampered, match=problem):
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
    (tmp_path / protocol.OUTPUTS).write_bytes(b"\xff" * 64)
    with pytest.raises(protocol.Tampered, match="cannot be read"):
        read(tmp_path, {"cells_done": True, "cell_errors": [], "parts": {}})
    (tmp_path / protocol.OUTPUTS).write_bytes(save({"a": torch.zeros(1)}) + b" " * (1 << 10))
    with pytest.raises(protocol.Tampered):
        protocol.read_capped(tmp_path / protocol.OUTPUTS, 1 << 9)


# ---- isolation of a child process --------------------------------------------------------

PROBE = """
import json, os, socket, sys
from pathlib import Path
import torch  # before confinement, as the engine's children import it
from autograder.engine.isolation import Limits, isolate
workdir = Path(sys.argv[1])
reached = isolate(workdir, Limits(hidden=(sys.argv[2],)))
def works(action):
    try:
        action()
        return True
    except OSError:
        return False
print(json.dumps({
    "reached": reached, "uid": os.getuid(), "cwd": os.getcwd(), "home": os.environ["HOME"],
    "env": sorted(os.environ),
    "connect": works(lambda: socket.create_connection(("127.0.0.1", int(sys.argv[3])), 2)),
    "solutions": works(lambda: os.listdir(sys.argv[4])),
    "secret": works(lambda: open(Path(sys.argv[2]) / "secret.txt").read()),
    "write_workdir": works(lambda: (workdir / "out.txt").write_text("ok")),
    "torch": torch.ones(2).sum().item(),
    "fork_limit": works(lambda: [os.fork() or os._exit(0) for _ in range(200)]),
}))
"""


def run_probe(tmp_path):
    workdir, secret = Path(tempfile.mkdtemp(prefix="backprop-probe-")), tmp_path / "course"
    secret.mkdir()
    (secret / "secret.txt").write_text("the gradebook")
    server = socket.create_server(("127.0.0.1", 0))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(workdir), str(secret),
         str(server.getsockname()[1]), str(REPO / "solutions")],
        capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"], "SECRET_TOKEN": "x"})
    server.close()
    shutil.rmtree(workdir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@FULL_ISOLATION
def test_a_confined_process_sees_only_its_workdir_and_has_no_network(tmp_path):
    probe = run_probe(tmp_path)
    assert "no network" in probe["reached"] and "DEGRADED" not in probe["reached"]
    assert probe["uid"] != 0
    assert probe["cwd"] == probe["home"] and "backprop-probe-" in probe["cwd"]
    assert "SECRET_TOKEN" not in probe["env"]
    assert not probe["connect"]
    assert not probe["solutions"] and not probe["secret"]
    assert probe["write_workdir"] and probe["torch"] == 2.0
    assert not probe["fork_limit"]  # 200 processes are more than the 64 allowed


# ---- one notebook through the command line -----------------------------------------------

def grade_command(*args):
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grade_json_prints_one_object_and_reproduces_with_its_seed(tmp_path):
    first = json.loads(grade_command(str(SOLUTION), "--assignment", "nn_from_scratch", "--json",
                                     "--gradescope", str(tmp_path / "results.json")))
    assert first["assignment"] == "nn_from_scratch" and isinstance(first["seed"], int)
    assert [p["id"] for p in first["parts"]] == [p.id for p in nn.ASSIGNMENT.parts]
    assert all(p["score"] == p["max_score"] > 0 and p["message"] for p in first["parts"])
    gradescope = json.loads((tmp_path / "results.json").read_text())
    assert gradescope["score"] == 10 and len(gradescope["tests"]) == 5
    again = json.loads(grade_command(str(SOLUTION), "--assignment", "nn_from_scratch", "--json",
                                     "--seed", str(first["seed"])))
    assert again["seed"] == first["seed"] and again["parts"] == first["parts"]


def test_a_missing_or_broken_notebook_scores_zero_with_its_reason(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    for path, reason in ((tmp_path / "none.ipynb", "no notebook was submitted"),
                         (broken, "not valid JSON (line 1")):
        result = json.loads(grade_command(str(path), "--assignment", "nn_from_scratch",
                                          "--json"))
        assert result["score"] == 0 and reason in result["note"]



@FULL_ISOLATION
def test_a_sandbox_that_cannot_start_raises_instead_of_grading(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # closed to the sandbox's uid
    with pytest.raises(GraderError, match="could not reach"):
        grade_notebook(SOLUTION, "nn_from_scratch")


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


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to take CAP_SYS_ADMIN away")
def test_without_namespaces_it_degrades_says_so_and_still_grades():
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin",
         sys.executable, "-m", "autograder", "grade", str(SOLUTION), "--assignment",
         "nn_from_scratch", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["isolation"].count("DEGRADED") == 1 and "unshare" in result["isolation"]
    uid = int(re.search(r"uid (\d+)", result["isolation"]).group(1))
    assert uid >= SANDBOX_UID_BASE and "limits:" in result["isolation"]  # these still hold
    assert result["score"] == result["max_score"] == 10
