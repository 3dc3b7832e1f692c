"""Where one submission's CPU goes: in process, and in the engine (trusted side and sandbox).

    .venv/bin/python bench/profile_submission.py                 # every assignment, n=6
    .venv/bin/python bench/profile_submission.py --n 10 nn_from_scratch
    .venv/bin/python bench/profile_submission.py --engine 0      # in process only

For each assignment it grades the answer key and one typical wrong submission (`WRONG`) as
`n` students, their hidden seeds drawn as the engine draws them (from a new pool like
`SEED_POOL` for each row: with n above its size, a seed and its references serve several
submissions), and prints CPU seconds a submission (`time.process_time`, so a busy
machine's waits do not count):

  * in process, split as the engine splits the work: drawing the hidden cases, the student's
    functions on them (what the sandboxed child runs), and judging (autograd's references,
    the known mistakes computed on a failing case, the figures, the rest of the judge);
  * through the engine (`grade_data`, sandboxed, one at a time): the trusted process's CPU,
    and the sandbox's, read from the fork server's process tree in /proc (its own CPU and
    its reaped children's), with the trusted side's heaviest functions (cProfile, CPU clock).
"""

import argparse
import cProfile
import pstats
import sys
import time
import warnings
from pathlib import Path

import nbformat
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from marginal_cost import sandbox_cpu  # noqa: E402
from mistake_corpus import CORPUS  # noqa: E402

from autograder import references  # noqa: E402
from autograder.course import REPO  # noqa: E402
from autograder.engine.launch import default_launcher  # noqa: E402
from autograder.engine.runner import Submission, grade_data  # noqa: E402
from autograder.kit.grading import _attempt, grade_outcomes  # noqa: E402
from autograder.references.graded import COMPUTED, SEED_POOL, SeedPool  # noqa: E402
from autograder.submissions import answered, defined_names, student_answers  # noqa: E402

# Each assignment's typical mistake (the demo's): the wrong submission profiled.
WRONG = {"nn_from_scratch": "tutorial_d_hidn_sum", "single_neuron": "no_zero_grad_neuron",
         "autograd_basics": "rebound_in_manual_step", "two_layer_net": "slope_1_at_zero"}
# Judging's parts, by the function whose cumulative CPU time is counted (file, name).
JUDGING = {"references": ("graded.py", "cached_reference"),
           "known mistakes": ("grading.py", "_known_mistake"),
           "figures": ("grading.py", "_figures")}


def fresh_pool() -> SeedPool:
    """A pool like the engine's, new: each row's seeds are its own, none cached before."""
    return SeedPool(SEED_POOL.size, SEED_POOL.uses)


def edits_of(assignment: str, student: str | None) -> tuple:
    return () if student is None else next(
        w.edits for w in CORPUS[assignment] if w.student == student)


def in_process(assignment: str, student: str | None, n: int) -> dict[str, float]:
    """CPU seconds a submission for cases, student, judging, and judging's parts (their share
    in n more gradings under cProfile, applied to judging's time without it). One grading
    first, not counted, warms up what runs once per process."""
    graded = references.get(assignment)
    who, pool = f"{student or 'answer_key'}-", fresh_pool()
    namespace = defined_names(assignment, edits_of(assignment, student))
    totals = dict.fromkeys(("cases", "student", "judging"), 0.0)
    profile = cProfile.Profile(time.process_time)
    profiled = 0.0
    for index in range(2 * n + 1):
        seed = pool.draw(assignment, f"{who}{index}")
        start = time.process_time()
        cases = {part.id: part.cases("hidden", seed) for part in graded.parts}
        cases_seconds = time.process_time() - start
        start = time.process_time()
        outcomes = {part.id: [_attempt(part, namespace.get(part.function), case)
                              for case in cases[part.id]] for part in graded.parts}
        student_seconds = time.process_time() - start
        start = time.process_time()
        if index > n:
            profile.enable()
        failing = {}
        for part in graded.parts:
            verdict = grade_outcomes(part, cases[part.id], outcomes[part.id], COMPUTED,
                                     frozenset(failing[f] for f in part.builds_on
                                               if f in failing))
            if not verdict.passed:
                failing[part.function] = verdict.mistake
        profile.disable()
        if 0 < index <= n:
            totals["cases"] += cases_seconds
            totals["student"] += student_seconds
            totals["judging"] += time.process_time() - start
        elif index > n:
            profiled += time.process_time() - start
    stats = pstats.Stats(profile).stats
    for what, (file, name) in JUDGING.items():
        totals[f"  {what}"] = totals["judging"] * _cumulative(stats, file, name) / profiled
    return {what: seconds / n for what, seconds in totals.items()}


def _cumulative(stats: dict, file: str, name: str) -> float:
    """The cumulative time of the function `name` of `file`."""
    return sum(cumulative for (path, _line, function), (_cc, _nc, _tt, cumulative, _callers)
               in stats.items() if path.endswith(file) and function == name)


def engine(assignment: str, student: str | None, n: int, top: int) -> dict[str, float]:
    """CPU seconds a submission graded by the engine: trusted side and sandbox."""
    release = REPO / "assignments" / assignment / f"{assignment}.ipynb"
    answers = student_answers(assignment, None, edits_of(assignment, student))
    notebook = nbformat.writes(answered(release, answers)).encode()
    launcher = default_launcher()
    who, pool = f"{student or 'answer_key'}-", fresh_pool()
    students = iter(f"{who}{index}" for index in range(2 * n + 1))

    def grade() -> None:
        grade_data(Submission(notebook, None, None), assignment,
                   seed=pool.draw(assignment, next(students)), launcher=launcher)

    grade()  # warm up
    trusted, sandbox = time.process_time(), sandbox_cpu(launcher)
    for _ in range(n):
        grade()
    time.sleep(0.3)  # the last child reaped
    trusted, sandbox = time.process_time() - trusted, sandbox_cpu(launcher) - sandbox
    if top:  # n more, under cProfile
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for _ in range(n):
            grade()
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(top)
    return {"trusted": trusted / n, "sandbox": sandbox / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="submissions of each kind")
    parser.add_argument("--engine", type=int, default=1, help="0: in process only")
    parser.add_argument("--top", type=int, default=0,
                        help="print the trusted side's top functions (cProfile)")
    parser.add_argument("assignments", nargs="*", default=list(references.ASSIGNMENTS))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    for assignment in args.assignments:
        for student in (None, WRONG[assignment]):
            who = student or "answer_key"
            split = in_process(assignment, student, args.n)
            row = ", ".join(f"{what.strip()} {seconds:.4f}" for what, seconds in split.items())
            print(f"{assignment} {who} in process: {row}", flush=True)
            if args.engine:
                cpu = engine(assignment, student, args.n, args.top)
                print(f"{assignment} {who} engine: trusted {cpu['trusted']:.4f}, "
                      f"sandbox {cpu['sandbox']:.4f}", flush=True)


if __name__ == "__main__":
    main()
