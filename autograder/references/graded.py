"""The grader's side of a part: its seeded cases, its autograd reference, its known mistakes.

Grader only: none of this is in the student kit. A `GradedPart` is the kit's `Part` (how
the student's function is called and judged) with these added; `Computed` gives the kit's
judge what to expect by computing it here, with autograd.
"""

import hashlib
import secrets
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import torch

from ..kit.grading import Outputs, PartResult, grade_part
from ..kit.parts import Assignment, Case, Part
from ..known_mistakes import KnownMistake


@dataclass(frozen=True, kw_only=True)
class GradedPart(Part):
    """A part as the grader knows it: make_cases(kind, seed) draws its seeded cases (kind
    "visible" or "hidden"), reference(*args) gives autograd's outputs, and `mistakes` are the
    wrong answers it computes, tried in order on a wrong result to name the mistake."""

    make_cases: Callable[[str, int], list[Case]]
    reference: Callable[..., Outputs]
    mistakes: tuple[KnownMistake, ...] = ()

    def cases(self, kind: str, seed: int) -> list[Case]:
        """The seeded cases of this part; kind is "visible" or "hidden". A submission's
        hidden cases come from a stream of this part's own (`part_seed`): the sandbox holds
        every requested part's inputs at once, and one part's input must never be another
        part's answer (sigmoid_delta's activations, drawn from sigmoid_activation's seed,
        were its sigmoids)."""
        return self.make_cases(kind, part_seed(seed, self.id) if kind == "hidden" else seed)


def part_seed(seed: int, part_id: str) -> int:
    """The seed of one part's hidden cases, from the submission's seed: the same for a
    re-grade with that seed, unrelated between parts."""
    return (seed * 1_000_003 + zlib.crc32(part_id.encode())) % (1 << 62)


@dataclass(frozen=True)
class Grading:
    """What the grader adds to one of the kit's parts."""

    make_cases: Callable[[str, int], list[Case]]
    reference: Callable[..., Outputs]
    mistakes: tuple[KnownMistake, ...] = ()


def graded(spec: Assignment, gradings: dict[str, Grading]) -> Assignment:
    """The kit's assignment with every part's cases, reference and mistakes added."""
    if set(gradings) != {part.id for part in spec.parts}:
        raise ValueError(f"{spec.name}: the parts graded ({sorted(gradings)}) are not the "
                         f"parts of the kit ({[part.id for part in spec.parts]})")
    parts = tuple(GradedPart(**{f.name: getattr(part, f.name) for f in fields(Part)},
                             make_cases=gradings[part.id].make_cases,
                             reference=gradings[part.id].reference,
                             mistakes=gradings[part.id].mistakes) for part in spec.parts)
    return Assignment(spec.name, parts, spec.on_device)


class Computed:
    """Expectations computed here with autograd, once per distinct input: the visible cases
    (the same for every submission) and a re-graded seed cost one computation per process,
    however many students are graded."""

    def reference(self, part: GradedPart, case: Case) -> Outputs:
        return cached_reference(part, case)

    def mistakes(self, part: GradedPart, case: Case
                 ) -> Iterable[tuple[KnownMistake, list[Outputs]]]:
        for known in part.mistakes:
            yield known, _memo((known, *_fingerprints(case)),
                               lambda known=known: list(known.compute(part.reference,
                                                                      dict(case.args))))


COMPUTED = Computed()


def cached_reference(part: GradedPart, case: Case) -> Outputs:
    """The part's autograd reference on this case, computed once per distinct input."""
    return remembered(part.reference, *case.args.values())


def remembered(reference: Callable[..., Outputs], *args) -> Outputs:
    """reference(*args), computed once per distinct input: the memo that judging reads, so
    that a case drawn by running its reference (two_layer_net's learnable networks) pays
    for it once."""
    return _memo((reference.__module__, reference.__qualname__, *map(_fingerprint, args)),
                 lambda: reference(*args))


def grade_with_references(part: GradedPart, function, cases: list[Case]) -> PartResult:
    """grade_part against autograd's references computed here (tests and tools; the engine
    judges what its sandbox returns with the same `COMPUTED`)."""
    return grade_part(part, function, cases, COMPUTED)


class SeedPool:
    """The hidden seeds of the submissions graded without a seed given, per assignment.

    Each is drawn fresh (`secrets`) in this process, when fewer than `size` are in use or
    none is new to the student; a draw picks one at random among those the student has not
    had. A seed serves at most `uses` submissions, never two of one student, and is then
    retired for good. Its autograd references and known mistakes (memoized here) are so
    computed once for up to `uses` submissions instead of once for each.

    The hidden cases stay unpredictable: no seed exists before its first draw, a student
    sees only their own feedback (cases by their shapes; an exception's message is their own
    code's, which may quote its inputs), and never gets the same cases twice, so whatever
    their code could pass out of one grading about its inputs is of no use to them in the
    next; to another student it is of use only with working code to compute the outputs."""

    def __init__(self, size: int, uses: int):
        self.size, self.uses = size, uses
        self._seeds: dict[str, list[tuple[int, set]]] = {}  # assignment -> (seed, students)
        self._lock = threading.Lock()

    def draw(self, assignment: str, student: str | None) -> int:
        """A seed for this student's submission of this assignment."""
        with self._lock:
            seeds = self._seeds.setdefault(assignment, [])
            new_to_student = [entry for entry in seeds if student not in entry[1]]
            if len(seeds) < self.size or not new_to_student:
                entry = (secrets.randbelow(2**31), set())
                seeds.append(entry)
                if len(seeds) > self.size:
                    seeds.pop(0)  # the oldest is retired
            else:
                entry = secrets.choice(new_to_student)
            entry[1].add(student)
            if len(entry[1]) >= self.uses:
                seeds.remove(entry)
            return entry[0]


# 4 seeds at a time, each for up to 16 submissions: the references of a class of 100 are
# computed for 7 to 9 seeds, not 100.
SEED_POOL = SeedPool(size=4, uses=16)


def _memo(key: tuple, compute: Callable[[], object]):
    """compute(), once per key: references and known mistakes are deterministic. The least
    recently used values go first, once there are more than CACHE_SIZE or they hold more
    than CACHE_BYTES of tensors."""
    global _cached_bytes
    with _CACHE_LOCK:
        value = _CACHE.pop(key, None)
        if value is not None:
            _CACHE[key] = value  # now the most recently used
    if value is None:
        value = compute()
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = value
                _cached_bytes += _nbytes(value)
            while len(_CACHE) > CACHE_SIZE or (_cached_bytes > CACHE_BYTES and len(_CACHE) > 1):
                _cached_bytes -= _nbytes(_CACHE.pop(next(iter(_CACHE))))
    return value


def _nbytes(value) -> int:
    """The bytes of the tensors in a cached value (outputs, or a list of them)."""
    if isinstance(value, torch.Tensor):
        return value.nbytes
    if isinstance(value, dict):
        return sum(map(_nbytes, value.values()))
    if isinstance(value, (list, tuple)):
        return sum(map(_nbytes, value))
    return 0


def _fingerprints(case: Case) -> tuple:
    return tuple(map(_fingerprint, case.args.values()))


def _fingerprint(value) -> tuple | str:
    """A key for one argument: a tensor by its dtype, shape, device and a digest of its
    values (a key holds no copy of a large input), anything else by its repr."""
    if not isinstance(value, torch.Tensor):
        return repr(value)
    data = value.detach().cpu().reshape(-1).view(torch.uint8).numpy()
    return (str(value.dtype), tuple(value.shape), str(value.device),
            hashlib.blake2b(data, digest_size=16).digest())


CACHE_SIZE = 8192
CACHE_BYTES = 64 << 20
_CACHE: dict[tuple, object] = {}
_CACHE_LOCK = threading.Lock()
_cached_bytes = 0
