"""Grade the answer keys and the labelled mistake corpus on many hidden seeds.

    make sweep                  # 100 seeds, every assignment, on all cores
    make sweep SEEDS=1000       # a longer one

Real grading draws fresh hidden inputs for every submission, and the test suite sees one
draw per run. A case on which autograd's own reference goes wrong, or a diagnosis that
holds on most draws only, shows up here as a verdict that differs from its label: the
answer key and the correct variants must pass every part with no diagnosis, and each wrong
submission of `tests/mistake_corpus.py` must fail exactly its labelled parts, named as
labelled. Grading is in-process (no sandbox: every submission here is ours), with the same
`grade_part` the engine's child runs, manual-backprop lock included.

Prints a line per assignment and, for each submission that was ever off, the first seed
and what it got; exits 1 when anything was off.
"""

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mistake_corpus import CORPUS, CORRECT  # noqa: E402

from autograder.assignments import get  # noqa: E402
from autograder.grading import grade_part  # noqa: E402
from autograder.submissions import defined_names  # noqa: E402

# Seeds spread over the range real grading draws from, the same for the same --first.
SEED_STRIDE = 104_729


def labelled_submissions(assignment: str) -> list[tuple[str, tuple, dict]]:
    """(student, edits of the answer key, {failing part: mistake}) for one assignment."""
    right = [("answer_key", (), {})] + [(student, edits, {})
                                        for student, edits in CORRECT[assignment]]
    return right + [(w.student, w.edits, w.fails) for w in CORPUS[assignment]]


def sweep_one(assignment: str, student: str, edits: tuple, fails: dict,
              seeds: list[int]) -> tuple[int, tuple | None]:
    """How many seeds gave other verdicts than the label, and the first (seed, got)."""
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # one submission per core
    parts, namespace = get(assignment).parts, defined_names(assignment, edits)
    off, first = 0, None
    for seed in seeds:
        got = {}
        for part in parts:
            result = grade_part(part, namespace.get(part.function), part.cases("hidden", seed))
            if not result.passed:
                got[part.id] = (result.mistake, result.message)
        if {part: mistake for part, (mistake, _) in got.items()} != fails:
            off += 1
            first = first or (seed, got)
    return off, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="hidden seeds per submission")
    parser.add_argument("--first", type=int, default=0, help="index of the first seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="processes")
    parser.add_argument("assignments", nargs="*", default=list(CORPUS))
    args = parser.parse_args()
    seeds = [index * SEED_STRIDE + 11 for index in range(args.first, args.first + args.seeds)]
    any_off = False
    with ProcessPoolExecutor(args.jobs) as pool:
        for assignment in args.assignments:
            start = time.perf_counter()
            submissions = labelled_submissions(assignment)
            futures = [(student, fails, pool.submit(sweep_one, assignment, student, edits,
                                                    fails, seeds))
                       for student, edits, fails in submissions]
            outcomes = [(student, fails, *future.result()) for student, fails, future in futures]
            off = {student: count for student, _, count, _ in outcomes if count}
            print(f"{assignment}: {len(submissions)} submissions x {len(seeds)} seeds in "
                  f"{time.perf_counter() - start:.0f} s; off the label: "
                  f"{sum(off.values())} of {len(submissions) * len(seeds)}", flush=True)
            for student, fails, count, (seed, got) in (o for o in outcomes if o[2]):
                print(f"  {student}: off on {count} seeds; seed {seed} expected {fails}, got:")
                for part, (mistake, message) in got.items():
                    print(f"    {part} [{mistake}] {message}")
            any_off = any_off or bool(off)
    return 1 if any_off else 0


if __name__ == "__main__":
    sys.exit(main())
