"""The files a sandbox's working directory holds, and how each side writes and reads them.

The trusted side writes:
    submission.ipynb      the student's notebook, as submitted
    request.json          assignment, limits, the device of the inputs ("cpu", "cuda:0"),
                          and per part the cases: labels and arguments (a tensor argument
                          names its key in inputs.safetensors; any other argument, such as
                          a learning rate, is given in JSON)
    inputs.safetensors    the tensor arguments, keys "<part>/<case>/<argument>"
The sandboxed child writes, after the notebook's cells and again after each part:
    status.json           {"cells_done": bool, "cell_errors": [...],
                           "parts": {part: ["ok" | {"message": why it failed,
                                                    "mistake": its name or null}, ...]},
                           "on_device": [keys of outputs that were on the inputs' GPU]}
    outputs.safetensors   the returned tensors, keys "<part>/<case>/<output>"

Tensors travel through the files on the CPU; each side puts them back on the device.

Only JSON and safetensors cross the boundary: nothing is ever unpickled. Everything the child
wrote is untrusted: it is read with a size cap, without following links, and validated.
"""

import json
import os
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ..diagnosis import Finding, known_mistake
from ..parts import Case, Part

SUBMISSION = "submission.ipynb"
REQUEST = "request.json"
INPUTS = "inputs.safetensors"
STATUS = "status.json"
OUTPUTS = "outputs.safetensors"
OK = "ok"
CPU = torch.device("cpu")
# The most the trusted side reads back from the child.
MAX_STATUS_BYTES = 1 << 20
MAX_OUTPUT_BYTES = 256 << 20
MAX_MESSAGE_CHARS = 600


class Tampered(Exception):
    """The child's files are not what an honest child writes; the text says how."""


def failure(finding: Finding) -> dict:
    """How the child writes a case that failed: its message and the mistake's name."""
    return {"message": finding.message[:MAX_MESSAGE_CHARS], "mistake": finding.mistake}


def _failure_finding(outcome: dict) -> Finding:
    """A failed case as the child wrote it; a name outside the vocabulary is dropped."""
    return Finding(outcome["message"][:MAX_MESSAGE_CHARS], known_mistake(outcome["mistake"]))


def _is_outcome(outcome) -> bool:
    return outcome == OK or isinstance(outcome, dict) and set(outcome) == {"message", "mistake"} \
        and isinstance(outcome["message"], str) \
        and (outcome["mistake"] is None or isinstance(outcome["mistake"], str))


def key(part_id: str, case_index: int, name: str) -> str:
    """The safetensors key of one tensor of one case of one part."""
    return f"{part_id}/{case_index}/{name}"


def own_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy on the CPU. safetensors refuses tensors that share memory, and
    cases share their inputs as students may share their outputs (one tensor returned twice,
    two views of one weight)."""
    return tensor.detach().to(CPU, copy=True, memory_format=torch.contiguous_format)


def cases_device(cases: dict[str, list[Case]]) -> torch.device:
    """The one device the cases' tensors are on (the CPU when they have none)."""
    devices = {value.device for part_cases in cases.values() for case in part_cases
               for value in case.args.values() if isinstance(value, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"the cases of one request are on several devices: {devices}")
    return devices.pop() if devices else CPU


def write_request(workdir: Path, assignment: str, cases: dict[str, list[Case]],
                  limits_json: dict) -> None:
    """Write request.json and inputs.safetensors for these parts' cases."""
    device = cases_device(cases)
    tensors: dict[str, torch.Tensor] = {}
    parts = {}
    for part_id, part_cases in cases.items():
        described = []
        for index, case in enumerate(part_cases):
            args = {}
            for name, value in case.args.items():
                if isinstance(value, torch.Tensor):
                    tensors[key(part_id, index, name)] = own_copy(value)
                    args[name] = {"tensor": key(part_id, index, name)}
                elif isinstance(value, (bool, int, float, str)) or value is None:
                    args[name] = {"value": value}
                else:
                    raise TypeError(f"argument {name} of {part_id} is a {type(value).__name__}: "
                                    f"the sandbox takes tensors, numbers and strings only")
            described.append({"label": case.label, "args": args})
        parts[part_id] = described
    write_atomically(workdir / INPUTS, save_tensors(tensors))
    write_atomically(workdir / REQUEST, json.dumps(
        {"assignment": assignment, "limits": limits_json, "device": str(device),
         "parts": parts}).encode())


def read_request(workdir: Path) -> tuple[dict, dict[str, list[Case]]]:
    """The request (as JSON) and each part's cases, rebuilt on the request's device."""
    request = json.loads((workdir / REQUEST).read_text())
    device = torch.device(request["device"])
    tensors = {name: tensor.to(device)
               for name, tensor in load_tensors((workdir / INPUTS).read_bytes()).items()}
    cases = {part_id: [Case(case["label"], {name: tensors[arg["tensor"]] if "tensor" in arg
                                            else arg["value"]
                                            for name, arg in case["args"].items()})
                       for case in described]
             for part_id, described in request["parts"].items()}
    return request, cases


def write_progress(workdir: Path, status: dict, outputs: dict[str, torch.Tensor]) -> None:
    """The child's side: outputs.safetensors, then status.json, each replaced atomically.

    Not flushed to disk: the working directory lives no longer than the child, and the
    rename alone keeps the parent from reading half a file. The outputs are the child's
    own copies (`own_copy`)."""
    write_atomically(workdir / OUTPUTS, save_tensors(outputs), durable=False)
    write_atomically(workdir / STATUS, json.dumps(status).encode(), durable=False)


def write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Write data to path through a temporary file and a rename: all or nothing.

    durable: flush it to disk first, so that it survives a crash of the machine too."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, path)


def read_capped(path: Path, max_bytes: int) -> bytes | None:
    """The bytes of a regular file (never through a link), None if absent; Tampered if larger."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise Tampered(f"{path.name} cannot be opened ({error.strerror})") from None
    with os.fdopen(handle, "rb") as file:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise Tampered(f"{path.name} is not a regular file")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Tampered(f"{path.name} is larger than {max_bytes} bytes")
    return data


def read_status(workdir: Path) -> dict | None:
    """status.json as written by the child, or None; Tampered if it is not well formed."""
    data = read_capped(workdir / STATUS, MAX_STATUS_BYTES)
    if data is None:
        return None
    try:
        status = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Tampered("status.json is not valid JSON") from None
    if not (isinstance(status, dict) and isinstance(status.get("cells_done"), bool)
            and isinstance(status.get("cell_errors"), list)
            and isinstance(status.get("parts"), dict)
            and all(isinstance(outcomes, list) and all(map(_is_outcome, outcomes))
                    for outcomes in status["parts"].values())
            and all(isinstance(e, str) for e in status["cell_errors"])
            and isinstance(status.get("on_device", []), list)
            and all(isinstance(k, str) for k in status.get("on_device", []))):
        raise Tampered("status.json does not have the fields the grader writes")
    return status


def read_outcomes(workdir: Path, parts: list[Part], n_cases: dict[str, int], status: dict,
                  device: torch.device = CPU
                  ) -> dict[str, list[dict[str, torch.Tensor] | Finding]]:
    """Per finished part, each case's outputs (plain tensors) or why it failed.

    An output the child had on the inputs' device is moved back to `device`; the others
    stay on the CPU, where the checks find them if the inputs were elsewhere.

    Only parts listed in `parts` are read; every key, shape of the status and tensor type is
    checked. Raises Tampered when the files are not what the honest child writes.
    """
    data = read_capped(workdir / OUTPUTS, MAX_OUTPUT_BYTES)
    try:
        tensors = load_tensors(data) if data else {}
    except Exception as error:  # safetensors raises its own error type for a bad header
        raise Tampered(f"outputs.safetensors cannot be read ({type(error).__name__})") from None
    expected: set[str] = set()
    outcomes: dict[str, list[dict[str, torch.Tensor] | Finding]] = {}
    for part in parts:
        if part.id not in status["parts"]:
            continue
        listed = status["parts"][part.id]
        ok = [o == OK for o in listed]
        if not (len(listed) == n_cases[part.id] and all(ok)
                or 0 < len(listed) <= n_cases[part.id] and all(ok[:-1]) and not ok[-1]):
            raise Tampered(f"status.json lists {len(listed)} results for {part.id}")
        outcomes[part.id] = []
        for index, outcome in enumerate(listed):
            if outcome != OK:
                outcomes[part.id].append(_failure_finding(outcome))
                continue
            names = {name: key(part.id, index, name) for name in part.output_names()}
            expected.update(names.values())
            missing = [k for k in names.values() if k not in tensors]
            if missing:
                raise Tampered(f"outputs.safetensors lacks {missing[0]}")
            on_device = set(status.get("on_device", ()))
            outcomes[part.id].append({name: _plain(tensors[k]).to(device) if k in on_device
                                      else _plain(tensors[k]) for name, k in names.items()})
    # A child stopped during a part may have written that part's outputs but not its status.
    pending = {part.id for part in parts if part.id not in status["parts"]}
    unknown = sorted(k for k in set(tensors) - expected if k.split("/")[0] not in pending)
    if unknown:
        raise Tampered(f"outputs.safetensors holds an unexpected tensor {unknown[0][:80]!r}")
    return outcomes


def _plain(tensor: Any) -> torch.Tensor:
    if type(tensor) is not torch.Tensor:
        raise Tampered(f"an output is a {type(tensor).__name__}, not a plain tensor")
    return tensor
