"""The files a sandbox's working directory holds, and how each side writes and reads them.

The trusted side writes:
    submission.ipynb      the student's notebook, as submitted
    request.json          assignment, limits, the device of the inputs ("cpu", "cuda:0"),
                          and per part the cases: labels and arguments (a tensor argument
                          names its key in inputs.safetensors; any other argument, such as
                          a learning rate, is given in JSON)
    inputs.safetensors    the tensor arguments, keys "<part>/<case>/<argument>"
    timed-inputs.bin      the tensor arguments of a timed part, raw: kept out of the child's
                          sight until the fork server starts its clock (see forkserver); the
                          request gives each one's offset, shape and dtype (and so a warm-up
                          call can use zeros of the same shapes)
The sandboxed child writes status.json after the notebook's cells, and after each part
that part's outputs file, then status.json again:
    status.json           {"cells_done": bool, "cell_errors": [...],
                           "parts": {part: ["ok" | {"message": why it failed,
                                                    "mistake": its name or null}, ...]},
                           "on_device": [keys of outputs that were on the inputs' GPU]}
    outputs-<part>.safetensors   that part's returned tensors, keys "<part>/<case>/<output>"
                          (a file a part: each tensor is serialised once, not again after
                          every later part)
    timed-outputs.bin     a timed part's returned tensors, raw, one fixed-size slot each
                          (status.json's "timed_outputs" gives each one's dtype and shape):
                          written by a copy into memory mapped before the clock starts, so
                          that the timing measures the calls, not serialisation

Tensors travel through the files on the CPU; each side puts them back on the device.

Only JSON and safetensors cross the boundary: nothing is ever unpickled. Everything the child
wrote is untrusted: it is read with a size cap, without following links, and validated (JSON
depth and numbers, key sets, tensor types and sizes) before anything else looks at it.
"""

import json
import math
import mmap
import os
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors.numpy import save as save_arrays
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ..kit.diagnosis import Finding, known_mistake
from ..kit.messages import plain_text
from ..kit.parts import INPUTS_AFTER, Case, Part
from .errors import Tampered

SUBMISSION = "submission.ipynb"
REQUEST = "request.json"
INPUTS = "inputs.safetensors"
TIMED = "timed-inputs.bin"
# The timing handshake between a child and the fork server: READY (the server reads the
# child's CPU clock and hands over the inputs), GO, then DONE once the outputs are written
# (the server reads the clock again and ends the child: nothing it does after counts).
READY, GO, DONE = b"?", b"!", b"."
STATUS = "status.json"
OK = "ok"
CPU = torch.device("cpu")
# The most the trusted side reads back from the child.
MAX_STATUS_BYTES = 1 << 20
MAX_OUTPUT_BYTES = 64 << 20
MAX_OUTPUT_ENTRIES = 1 << 20  # entries of any one returned tensor (8 MiB in float64)
MAX_JSON_DEPTH = 8
STATUS_KEYS = frozenset({"cells_done", "cell_errors", "parts", "on_device", "timed_outputs"})
TIMED_OUTPUTS = "timed-outputs.bin"
# The dtypes an output may have (real numbers and booleans), by name.
PLAIN_DTYPES = {str(dtype): dtype for dtype in (torch.float64, torch.float32, torch.float16,
                                                torch.bfloat16, torch.bool, torch.uint8,
                                                torch.int8, torch.int16, torch.int32,
                                                torch.int64)}
MAX_MESSAGE_CHARS = 600


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
                  limits_json: dict, timed: frozenset[str] = frozenset(),
                  timed_path: Path | None = None) -> None:
    """Write request.json and inputs.safetensors for these parts' cases; the tensors of the
    timed parts go to timed_path instead (see forkserver.timed_inputs_waiting)."""
    device = cases_device(cases)
    tensors: dict[str, torch.Tensor] = {}
    withheld: list[bytes] = []
    offset = 0
    parts = {}
    for part_id, part_cases in cases.items():
        described = []
        for index, case in enumerate(part_cases):
            args = {}
            for name, value in case.args.items():
                if isinstance(value, torch.Tensor) and part_id in timed:
                    raw = own_copy(value).reshape(-1).view(torch.uint8).numpy().tobytes()
                    withheld.append(raw)
                    args[name] = {"timed": offset, "shape": list(value.shape),
                                  "dtype": str(value.dtype)}
                    offset += len(raw)
                elif isinstance(value, torch.Tensor):
                    tensors[key(part_id, index, name)] = own_copy(value)
                    args[name] = {"tensor": key(part_id, index, name)}
                elif isinstance(value, (bool, int, float, str)) or value is None:
                    args[name] = {"value": value}
                else:
                    raise TypeError(f"argument {name} of {part_id} is a {type(value).__name__}: "
                                    f"the sandbox takes tensors, numbers and strings only")
            described.append({"label": case.label, "args": args})
        parts[part_id] = described
    if len(timed & set(parts)) > 1:
        raise ValueError("one timed part per request: the fork server ends the child after it")
    if withheld:
        timed_path.parent.mkdir(mode=0o700)
        write_atomically(timed_path, b"".join(withheld), durable=False)
    write_atomically(workdir / INPUTS, serialised(tensors), durable=False)
    write_atomically(workdir / REQUEST, json.dumps(
        {"assignment": assignment, "limits": limits_json, "device": str(device),
         "timed": sorted(timed & set(parts)), "parts": parts}).encode(), durable=False)


def timed_inputs_waiting(workdir: Path) -> Path:
    """Where the trusted side leaves a child's timed inputs until the fork server lets it
    go: a folder of the grader's in the working directory, closed to the child's uid."""
    return workdir / ".timed" / TIMED


def read_request(workdir: Path) -> tuple[dict, dict[str, list[Case]]]:
    """The request (as JSON) and each untimed part's cases, on the request's device."""
    request = json.loads((workdir / REQUEST).read_text())
    tensors = _load_on_device(workdir / INPUTS, request)
    return request, {part_id: _cases(described, tensors)
                     for part_id, described in request["parts"].items()
                     if part_id not in request["timed"]}


def read_timed_cases(workdir: Path, request: dict, part_id: str) -> list[Case]:
    """A timed part's cases, once the fork server has handed over their tensors (mapped,
    not copied: reading them costs the clock almost nothing)."""
    with open(workdir / TIMED, "rb") as file:
        memory = mmap.mmap(file.fileno(), 0, flags=mmap.MAP_PRIVATE,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
    return _timed_cases(request, part_id, lambda arg: torch.frombuffer(
        memory, dtype=PLAIN_DTYPES[arg["dtype"]], offset=arg["timed"],
        count=torch.Size(arg["shape"]).numel()).reshape(arg["shape"]))


def warm_up_cases(request: dict, part_id: str) -> list[Case]:
    """Cases of a timed part's shapes and dtypes, all zeros: for a call before the clock."""
    return _timed_cases(request, part_id, lambda arg: torch.zeros(
        arg["shape"], dtype=PLAIN_DTYPES[arg["dtype"]]))


def _timed_cases(request: dict, part_id: str, tensor_of) -> list[Case]:
    device = torch.device(request["device"])
    return [Case(case["label"], {name: tensor_of(arg).to(device) if "timed" in arg
                                 else arg["value"] for name, arg in case["args"].items()})
            for case in request["parts"][part_id]]


def _load_on_device(path: Path, request: dict) -> dict[str, torch.Tensor]:
    device = torch.device(request["device"])
    return {name: tensor.to(device) for name, tensor in load_tensors(path.read_bytes()).items()}


def _cases(described: list[dict], tensors: dict[str, torch.Tensor]) -> list[Case]:
    return [Case(case["label"], {name: tensors[arg["tensor"]] if "tensor" in arg
                                 else arg["value"]
                                 for name, arg in case["args"].items()})
            for case in described]


def serialised(tensors: dict[str, torch.Tensor]) -> bytes:
    """The safetensors file of these contiguous CPU tensors (`own_copy`), written through
    numpy's arrays: safetensors' torch writer spends 50 us of Python on each tensor, five
    times its numpy writer (the same file format). numpy has no bfloat16: such a file is
    written by the torch writer."""
    if any(tensor.dtype == torch.bfloat16 for tensor in tensors.values()):
        return save_tensors(tensors)
    return save_arrays({name: tensor.numpy() for name, tensor in tensors.items()})


def outputs_file(part_id: str) -> str:
    """The name of the file that holds a part's outputs."""
    if not part_id.isidentifier():
        raise ValueError(f"a part's id is a Python name: {part_id!r}")
    return f"outputs-{part_id}.safetensors"


def write_progress(workdir: Path, status: dict, outputs: dict[str, torch.Tensor]) -> None:
    """The child's side: the outputs of the parts just done (keyed "<part>/<case>/<output>",
    each part's in its own file), then status.json, each replaced atomically.

    Not flushed to disk: the working directory lives no longer than the child, and the
    rename alone keeps the parent from reading half a file. The outputs are the child's
    own copies (`own_copy`)."""
    by_part: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in outputs.items():
        by_part.setdefault(name.split("/", 1)[0], {})[name] = tensor
    for part_id, tensors in by_part.items():
        write_atomically(workdir / outputs_file(part_id), serialised(tensors), durable=False)
    write_status(workdir, status)


def write_status(workdir: Path, status: dict) -> None:
    """The child's side: status.json alone, replaced atomically."""
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
    status = loads_untrusted(data, "status.json")
    if not (isinstance(status, dict) and set(status) <= STATUS_KEYS
            and isinstance(status.get("cells_done"), bool)
            and isinstance(status.get("cell_errors"), list)
            and isinstance(status.get("parts"), dict)
            and all(isinstance(outcomes, list) and all(map(_is_outcome, outcomes))
                    for outcomes in status["parts"].values())
            and all(isinstance(e, str) for e in status["cell_errors"])
            and isinstance(status.get("on_device", []), list)
            and all(isinstance(k, str) for k in status.get("on_device", []))
            and isinstance(status.get("timed_outputs", {}), dict)):
        raise Tampered("status.json does not have the fields the grader writes")
    return status


def loads_untrusted(data: bytes, what: str):
    """JSON from the sandbox: Tampered unless it is valid, shallow, with plain numbers; every
    string in it (keys too) made plain text (`messages.plain_text`: valid UTF-8, control
    characters escaped), so that what the child wrote cannot break a terminal, a page or
    an encoder downstream."""
    try:
        value = json.loads(data, parse_int=_bounded_int, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise Tampered(f"{what} is not valid JSON of the grader's shape") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise Tampered(f"{what} is nested deeper than the grader writes")
    return _plain_strings(value)


def _plain_strings(value):
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, list):
        return [_plain_strings(item) for item in value]
    if isinstance(value, dict):
        return {plain_text(k): _plain_strings(item) for k, item in value.items()}
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 19:
        raise ValueError("an integer too large")
    return int(text)


def _no_constant(text: str):
    raise ValueError(f"{text} is not JSON")


def _depth(value, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """How deep value nests (counted no further than limit)."""
    if limit == 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def read_outcomes(workdir: Path, parts: list[Part], n_cases: dict[str, int], status: dict,
                  device: torch.device = CPU, timed_slots: dict[str, int] | None = None
                  ) -> dict[str, list[dict[str, torch.Tensor] | Finding]]:
    """Per finished part, each case's outputs (plain tensors) or why it failed.

    An output the child had on the inputs' device is moved back to `device`; the others
    stay on the CPU, where the checks find them if the inputs were elsewhere.

    Only parts listed in `parts` are read; every key, shape of the status and tensor type is
    checked. Raises Tampered when the files are not what the honest child writes.
    timed_slots: the slot size of each timed part (see timed_slot_bytes).
    """
    timed_slots = timed_slots or {}
    tensors: dict[str, torch.Tensor] = {}
    budget = MAX_OUTPUT_BYTES  # over every part's file together
    for part in parts:
        if part.timed or part.id not in status["parts"]:
            continue  # a part stopped midway may have written its file but not its status
        data = read_capped(workdir / outputs_file(part.id), budget)
        budget -= len(data or b"")
        try:
            found = load_tensors(data) if data else {}
        except Exception as error:  # safetensors raises its own error type for a bad header
            raise Tampered(f"{outputs_file(part.id)} cannot be read "
                           f"({type(error).__name__})") from None
        if stranger := next((k for k in found if k.split("/")[0] != part.id), None):
            raise Tampered(f"{outputs_file(part.id)} holds an unexpected tensor "
                           f"{stranger[:80]!r}")
        tensors.update(found)
    for part in parts:
        if part.timed and part.id in status["parts"]:
            tensors.update(read_timed_tensors(workdir, part, n_cases[part.id],
                                              timed_slots[part.id],
                                              status.get("timed_outputs", {})))
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
                raise Tampered(f"the outputs file lacks {missing[0]}")
            on_device = set(status.get("on_device", ()))
            outcomes[part.id].append({name: _plain(tensors[k]).to(device) if k in on_device
                                      else _plain(tensors[k]) for name, k in names.items()})
    unknown = sorted(set(tensors) - expected)
    if unknown:
        raise Tampered(f"the outputs hold an unexpected tensor {unknown[0][:80]!r}")
    return outcomes


def timed_slot_bytes(shapes: list[list[int]]) -> int:
    """The bytes of each slot of a timed part: its largest input, in float64."""
    return 8 * max((int(torch.Size(shape).numel()) for shape in shapes), default=1)


class TimedSlots:
    """The child's side of timed-outputs.bin: mapped and touched before the clock starts."""

    def __init__(self, workdir: Path, request: dict, part_id: str, names: list[str]):
        described = request["parts"][part_id]
        self.names = names
        self.slot = timed_slot_bytes([arg["shape"] for case in described
                                      for arg in case["args"].values() if "timed" in arg])
        size = self.slot * len(described) * len(names)
        with open(workdir / TIMED_OUTPUTS, "w+b") as file:
            file.truncate(size)
            self.memory = mmap.mmap(file.fileno(), size)
        self.memory.write(bytes(size))  # every page touched now, not on the clock

    def copy_in(self, index: int, case: Case) -> list:
        """The copies of one case's arguments that the student's function is given: its
        (one) tensor input copied straight into its INPUTS_AFTER slot, where the call leaves
        it to be given back as it is (a copy the call needs anyway: nothing is added to the
        clock). Any other tensor, or one on a GPU, is cloned."""
        position = self.names.index(INPUTS_AFTER)
        offset = (index * len(self.names) + position) * self.slot
        args, slotted = [], False
        for value in case.args.values():
            if isinstance(value, torch.Tensor):
                if value.is_cpu and not slotted and 0 < value.nbytes <= self.slot:
                    copy = torch.frombuffer(self.memory, dtype=value.dtype,
                                            count=value.numel(), offset=offset)
                    value = copy.reshape(value.shape).copy_(value)
                    slotted = True
                else:
                    value = value.clone()
            args.append(value)
        return args

    def store(self, index: int, outputs: dict[str, torch.Tensor]) -> dict[str, dict]:
        """Copy one case's outputs into their slots (one already there, the input that
        `copy_in` put there, stays); their dtypes and shapes, by key."""
        described = {}
        for position, name in enumerate(self.names):
            tensor = outputs[name].detach().to(CPU).contiguous().reshape(-1)
            raw = tensor.view(torch.uint8) if tensor.numel() else tensor.to(torch.uint8)
            if str(tensor.dtype) not in PLAIN_DTYPES or raw.numel() > self.slot:
                raise ValueError(f"{name} is a {tensor.dtype} of {raw.numel()} bytes")
            offset = (index * len(self.names) + position) * self.slot
            target = torch.frombuffer(self.memory, dtype=torch.uint8, count=raw.numel(),
                                      offset=offset)
            if raw.data_ptr() != target.data_ptr():
                target.copy_(raw)
            described[key("", index, name)] = {"dtype": str(tensor.dtype),
                                               "shape": list(outputs[name].shape)}
        return described


def read_timed_tensors(workdir: Path, part: Part, n_cases: int, slot: int,
                       described: Any) -> dict[str, torch.Tensor]:
    """A timed part's tensors from timed-outputs.bin, as status.json describes them; each
    description is checked (dtype, shape, size within its slot) before a byte is read."""
    names = part.output_names()
    data = read_capped(workdir / TIMED_OUTPUTS, slot * n_cases * len(names)) or b""
    if not isinstance(described, dict):
        raise Tampered("status.json's timed outputs are not a table")
    tensors = {}
    for index in range(n_cases):
        for position, name in enumerate(names):
            entry = described.get(key("", index, name))
            if entry is None:
                continue
            if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape"}
                    and entry["dtype"] in PLAIN_DTYPES and isinstance(entry["shape"], list)
                    and len(entry["shape"]) <= 8
                    and all(isinstance(n, int) and 0 <= n <= slot for n in entry["shape"])):
                raise Tampered(f"status.json describes {part.id}'s timed output badly")
            dtype = PLAIN_DTYPES[entry["dtype"]]
            count = math.prod(entry["shape"])  # Python's integers: no overflow
            size = count * torch.empty((), dtype=dtype).element_size()
            offset = (index * len(names) + position) * slot
            if size > slot or offset + size > len(data):
                raise Tampered(f"a timed output of {part.id} is larger than its slot")
            raw = torch.frombuffer(bytearray(data[offset:offset + size]), dtype=torch.uint8)
            tensors[key(part.id, index, name)] = (raw.view(dtype) if count else
                                                  torch.empty(0, dtype=dtype)
                                                  ).reshape(entry["shape"])
    return tensors


def _plain(tensor: Any) -> torch.Tensor:
    if type(tensor) is not torch.Tensor:
        raise Tampered(f"an output is a {type(tensor).__name__}, not a plain tensor")
    if tensor.numel() > MAX_OUTPUT_ENTRIES:
        raise Tampered(f"an output has {tensor.numel()} entries, more than the "
                       f"{MAX_OUTPUT_ENTRIES} the child passes on")
    if str(tensor.dtype) not in PLAIN_DTYPES:
        raise Tampered(f"an output is of dtype {tensor.dtype}, never an honest child's")
    return tensor
