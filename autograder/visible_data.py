"""The data the release ships next to each notebook: the visible cases and what the checks
expect of them, computed here once (`make release`), so that the student kit needs no
reference, no case generator and no seed.

The sandbox gets the same file with the examples alone (`examples_bytes`): the notebook's
cells load their data from it, and nothing in it says what any part should return.
"""

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import importlib
import os
import platform
import stat
import tempfile
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from . import references
from .kit import visible
from .kit.grading import agrees_with_mistake
from .kit.parts import Case
from .known_mistakes import KnownMistake
from .references.graded import COMPUTED, GradedPart

VISIBLE_SEED = 0  # the visible cases' seed; the hidden ones are drawn fresh per submission

# What another machine's arithmetic does to a computation (other vector instructions, another
# BLAS path, another order of a sum), as a nudge of its inputs: 4 units in the last place of
# a float64. The least stable output kept (single_neuron's bias, mean_vs_sum at 10 times the
# rate, which a student's summed loss matches over all 400 epochs) moved 0.06 of
# KNOWN_MISTAKE between two real machines and at most 0.44 under this nudge (40 sign draws);
# every other output kept, under 1% of it; a chaotic one, by O(1). A nudge 4 times larger
# drops that output on some draws (and the notebook's name for the mistake with it).
NUDGE = 2.0 ** -50

# A folder of this user's, writable by nobody else, where each release's data, once computed,
# is kept for the same code, libraries and arithmetic: set by the test suite, whose many
# `generate_assignment` runs (3 to 10 s of CPU each) then compute each release once per run.
# Unset (or any other folder), every generation computes it.
RELEASE_CACHE = "BACKPROP_LAB_RELEASE_CACHE"
LOCK_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW


def _examples(name: str) -> dict:
    module = importlib.import_module(f".references.{name}", __package__)
    return {example: make() for example, make in module.EXAMPLES.items()}


def shipped(name: str) -> visible.Shipped:
    """The visible cases of assignment name, with autograd's outputs and every known
    mistake's outputs on each."""
    parts = {}
    for part in references.get(name).parts:
        parts[part.id] = [
            visible.ShippedCase(case, COMPUTED.reference(part, case),
                                tuple((known.recognised(), reproducible(part, case, known,
                                                                        candidates))
                                      for known, candidates in COMPUTED.mistakes(part, case)))
            for case in part.cases("visible", VISIBLE_SEED)]
    return visible.Shipped(name, _examples(name), parts)


def reproducible(part: GradedPart, case: Case, known: KnownMistake,
                 candidates: list[visible.Outputs]) -> tuple[visible.Outputs, ...]:
    """The mistake's outputs on case that every machine computes alike: those that its run
    on the nudged inputs reproduces, compared as the kit compares a student's outputs with
    them. A mistake that makes training chaotic (a rate N times too large) gives outputs that
    any rounding changes: shipped, they would name the mistake on the release machine's
    rounding alone, and make every other CPU's release differ from the committed one."""
    recognised = known.recognised()
    again = known.compute(part.reference, dict(nudged(case).args))
    return tuple(candidate for candidate, other in zip(candidates, again, strict=True)
                 if agrees_with_mistake(part, case, recognised, other, candidate))


def nudged(case: Case) -> Case:
    """case with each entry of its float tensors that is not a whole number moved by NUDGE,
    relative, the sign drawn from a fixed seed; whole numbers (labels, exact zeros) and plain
    numbers (rates, epochs, h) as they are."""
    signs = torch.Generator().manual_seed(VISIBLE_SEED)
    args = {}
    for name, value in case.args.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            sign = (torch.randint(0, 2, value.shape, generator=signs) * 2 - 1).to(value)
            value = torch.where(value == value.round(), value, value * (1 + NUDGE * sign))
        args[name] = value
    return dataclasses.replace(case, args=args)


def release_bytes(name: str) -> bytes:
    """The release file of assignment name (from $BACKPROP_LAB_RELEASE_CACHE where set)."""
    folder = private_folder(os.environ.get(RELEASE_CACHE))
    if folder is not None:
        with contextlib.suppress(OSError):  # a folder it cannot use: computed here instead
            return _kept(folder, name)
    return visible.dump(shipped(name))


def _kept(folder: Path, name: str) -> bytes:
    """The release file as folder keeps it for this code, computed and kept first where it
    is not (one process computes it, the others wait)."""
    kept = folder / f"{name}-{code_digest()}.safetensors"
    with os.fdopen(os.open(folder / f"{name}.lock", LOCK_FLAGS, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read_whole(kept)
        if data is None:
            data = visible.dump(shipped(name))
            with tempfile.NamedTemporaryFile(dir=folder, delete=False) as partial:
                partial.write(data)
            os.replace(partial.name, kept)
        return data


def private_folder(path: str | None) -> Path | None:
    """path where it names a folder of this user's that nobody else can write to."""
    try:
        status = os.stat(path, follow_symlinks=False) if path else None
    except OSError:
        return None
    if status is None or not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() \
            or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return Path(path)


def _read_whole(kept: Path) -> bytes | None:
    """The kept file's bytes where it is one this code wrote whole (a safetensors file that
    loads), or None."""
    try:
        with os.fdopen(os.open(kept, os.O_RDONLY | os.O_NOFOLLOW), "rb") as file:
            data = file.read()
        safetensors.torch.load(data)
    except Exception:  # missing, a link, cut short or not safetensors: computed again
        return None
    return data


@functools.cache
def code_digest() -> str:
    """What a release's data is computed from: this package's code (read at its first use), the
    versions of torch and safetensors, and the arithmetic this machine does (CPU, the
    vector instructions ATen uses, MKL's reproducibility mode)."""
    digest = hashlib.sha256()
    for part in (torch.__version__, safetensors.__version__, platform.machine(),
                 _cpu_model(), torch.backends.cpu.get_cpu_capability(),
                 os.environ.get("MKL_CBWR", "")):
        digest.update(part.encode() + b"\0")
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if path.is_file() and not path.is_symlink() and not any(
                part.startswith(".") for part in relative.parts):  # no editor's lock file
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _cpu_model() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next((line for line in info.splitlines() if line.startswith("model name")), "")


@functools.cache
def examples_bytes(name: str) -> bytes:
    """The file as a sandbox gets it: the examples alone, no case and no expectation."""
    return visible.dump(visible.Shipped(name, _examples(name), {}))


def after_generate_assignment(assignment: str, student: str, notebooks: list[str]) -> None:
    """nbgrader's `GenerateAssignment.post_convert_hook`: write the file next to the
    notebooks nbgrader just released, so that `nbgrader generate_assignment` (the command,
    the formgrader's button, `make release`) ships it. nbgrader only logs a hook's exception,
    so a failure here ends the command instead, with its reason on one line."""
    if not notebooks:
        return
    source = Path(notebooks[0]).resolve().parent
    name = source.name
    if name not in references.ASSIGNMENTS:
        return
    # The release folder: of the course's folders (source/ aside) that hold this
    # assignment's notebooks at their top level, the one nbgrader has just written to
    # (solutions/ holds them too).
    root = source.parent.parent
    written = [((folder / name / Path(notebooks[0]).name).stat().st_mtime_ns, folder / name)
               for folder in root.iterdir() if folder.is_dir() and folder != source.parent
               and all((folder / name / Path(n).name).is_file() for n in notebooks)]
    try:
        if not written:
            raise FileNotFoundError(f"no release folder of {name} under {root}")
        (max(written)[1] / visible.FILE).write_bytes(release_bytes(name))
    except Exception as error:
        raise SystemExit(f"backprop-lab: the visible checks' data of {name} could not be "
                         f"written: {error}") from None
