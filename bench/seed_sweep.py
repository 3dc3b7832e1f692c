"""Grade the answer keys and the labelled mistake corpus on many hidden seeds.

    make sweep                  # 100 seeds, every assignment, on all cores
    make sweep SEEDS=1000       # a longer one

Real grading draws fresh hidden inputs for every submission, and the test suite sees one
draw per run. A case on which autograd's own reference goes wrong, or a diagnosis that
holds on most draws only, shows up here as a verdict that differs from its label: the
answer key and the correct variants must pass every part with no diagnosis, and each wrong
submission of `tests/mistake_corpus.py` must fail exactly its labelled parts, named as
labelled. Grading is in-process (no sandbox: every submission here is ours), with the same
`grade_part` the engine's child runs, manual-backprop lock included, and the same evidence
the engine judges with (the mistakes of the failing parts a part builds on).

It prints, over every grading (a submission on one seed):
  * the right score: the failing parts are exactly the labelled ones;
  * the right name, over the wrong submissions labelled with a name (bar: 95%);
  * a misleading name, over those for which no name fits (`UNNAMED`; bar: at most 5%);
  * a name on correct work (bar: none);
and, over the wrong submissions, how many pass every visible check (the notebook's own test
cells) but lose points in grading (bar: 0). Each submission that was ever off its label is
listed with its first seed and what it got. Exits 1 when any bar is missed.
"""

import argparse
import json
import os
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mistake_corpus import CORPUS, CORRECT, UNNAMED, labels_hold  # noqa: E402

from autograder.kit.grading import grade_part, helpers_failed  # noqa: E402
from autograder.references import get  # noqa: E402
from autograder.references.graded import COMPUTED  # noqa: E402
from autograder.submissions import defined_names  # noqa: E402
from autograder.visible_data import VISIBLE_SEED  # noqa: E402

# Seeds spread over the range real grading draws from, the same for the same --first.
SEED_STRIDE = 104_729
NAMED_RIGHT_BAR, MISLEADING_BAR = 0.95, 0.05
# Parts left out (--skip-part), e.g. one whose check is being rewritten.
SKIPPED: set[str] = set()

# {part id: (mistake or None, message)}: the parts that lost points.
Verdicts = dict[str, tuple[str | None, str]]


@dataclass(frozen=True)
class Submission:
    """One labelled submission: its kind ("correct", "named" or "unnamed"), its edits of the
    answer key, and {failing part: mistake} as labelled."""

    assignment: str
    student: str
    kind: str
    edits: tuple
    fails: dict


def labelled_submissions(assignment: str) -> list[Submission]:
    """The answer key, the correct variants and the wrong submissions of one assignment."""
    right = [Submission(assignment, "answer_key", "correct", (), {})] + [
        Submission(assignment, student, "correct", edits, {})
        for student, edits in CORRECT[assignment] if student != "answer_key"]
    wrong = [Submission(assignment, w.student, kind, w.edits,
                        {part: name for part, name in w.fails.items() if part not in SKIPPED})
             for kind, corpus in (("named", CORPUS), ("unnamed", UNNAMED))
             for w in corpus.get(assignment, [])]
    return right + [submission for submission in wrong if submission.fails]


def verdicts(assignment: str, namespace: dict, kind: str, seed: int,
             skipped: frozenset[str] = frozenset()) -> Verdicts:
    """What grading every part on the cases of this kind and seed takes points for: each
    part given, as the engine gives it, the mistakes of the failing parts it builds on."""
    got, failing = {}, {}
    for part in (part for part in get(assignment).parts if part.id not in skipped):
        result = grade_part(part, namespace.get(part.function), part.cases(kind, seed),
                            COMPUTED, helpers_failed(part, failing))
        if not result.passed:
            got[part.id] = (result.mistake, result.message)
            failing[part.function] = result.mistake
    return got


def sweep_one(submission: Submission, seeds: list[int],
              skipped: frozenset[str] = frozenset()) -> tuple[Verdicts, list[Verdicts]]:
    """The visible verdicts (the notebook's own test cells), and the hidden ones on each
    seed."""
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # one submission per core
    namespace = defined_names(submission.assignment, submission.edits)
    return (verdicts(submission.assignment, namespace, "visible", VISIBLE_SEED, skipped),
            [verdicts(submission.assignment, namespace, "hidden", seed, skipped)
             for seed in seeds])


def names_given(verdicts: Verdicts) -> dict[str, str | None]:
    """{part: the mistake it was named, or None} for the parts that failed."""
    return {part: mistake for part, (mistake, _) in verdicts.items()}


@dataclass
class Tally:
    """The sweep's counts, over gradings (a submission on one seed) unless said otherwise."""

    gradings: int = 0
    score_off: int = 0
    named: int = 0
    named_right: int = 0
    unnamed: int = 0
    misleading: int = 0
    correct: int = 0
    correct_named: int = 0
    visible_pass_graded_down: int = 0  # wrong submissions, not gradings

    def add(self, submission: Submission, visible: Verdicts, hidden: list[Verdicts]) -> bool:
        """Count one submission's gradings; whether any was off its label, or it passed
        every visible check and lost points."""
        labelled = submission.fails
        off = False
        for got in hidden:
            names = names_given(got)
            held = labels_hold(labelled, names)
            self.gradings += 1
            self.score_off += set(names) != set(labelled)
            if submission.kind == "correct":
                self.correct += 1
                self.correct_named += any(name is not None for name in names.values())
            elif submission.kind == "named":
                self.named += 1
                self.named_right += held
            else:
                self.unnamed += 1
                self.misleading += any(names[part] is not None and names[part] != mistake
                                       for part, mistake in labelled.items() if part in names)
            off = off or not held
        falsely_passed = submission.kind != "correct" and not visible and any(hidden)
        self.visible_pass_graded_down += falsely_passed
        return off or falsely_passed

    def lines(self) -> list[str]:
        def share(count: int, total: int) -> str:
            return f"{count} of {total} ({100 * count / max(total, 1):.1f}%)"
        return [f"right score: {share(self.gradings - self.score_off, self.gradings)}",
                f"right name (labelled with one): {share(self.named_right, self.named)}",
                f"misleading name (no name fits): {share(self.misleading, self.unnamed)}",
                f"a name on correct work: {share(self.correct_named, self.correct)}",
                f"wrong submissions that pass every visible check but lose points in "
                f"grading: {self.visible_pass_graded_down}"]

    def holds(self) -> bool:
        return (self.score_off == 0 and self.correct_named == 0
                and self.named_right >= NAMED_RIGHT_BAR * self.named
                and self.misleading <= MISLEADING_BAR * self.unnamed
                and self.visible_pass_graded_down == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="hidden seeds per submission")
    parser.add_argument("--first", type=int, default=0, help="index of the first seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="processes")
    parser.add_argument("--skip-part", action="append", default=[], metavar="PART",
                        help="leave this part out of verdicts and labels (repeatable)")
    parser.add_argument("--student", action="append", default=[], metavar="NAME",
                        help="sweep only these submissions (repeatable; default: all)")
    parser.add_argument("--dump", type=Path, metavar="FILE",
                        help="write every verdict (JSON lines), to compare two versions")
    parser.add_argument("assignments", nargs="*", default=list(CORPUS))
    args = parser.parse_args()
    SKIPPED.update(args.skip_part)
    seeds = [index * SEED_STRIDE + 11 for index in range(args.first, args.first + args.seeds)]
    tally = Tally()
    dump = args.dump.open("w") if args.dump else None
    with ProcessPoolExecutor(args.jobs) as pool:
        for assignment in args.assignments:
            start = time.perf_counter()
            submissions = [submission for submission in labelled_submissions(assignment)
                           if not args.student or submission.student in args.student]
            futures = [(submission, pool.submit(sweep_one, submission, seeds,
                                                frozenset(SKIPPED)))
                       for submission in submissions]
            kinds = Counter(submission.kind for submission in submissions)
            report = []
            for submission, future in futures:
                visible, hidden = future.result()
                if dump:
                    dump.write(json.dumps({"assignment": assignment,
                                           "student": submission.student, "visible": visible,
                                           "hidden": dict(zip(map(str, seeds), hidden,
                                                              strict=True))},
                                          sort_keys=True) + "\n")
                if tally.add(submission, visible, hidden):
                    report.append((submission, visible, hidden))
            print(f"{assignment}: {len(submissions)} submissions ({kinds['correct']} correct, "
                  f"{kinds['named']} named, {kinds['unnamed']} unnamed) x {len(seeds)} seeds "
                  f"in {time.perf_counter() - start:.0f} s; off the label: {len(report)}",
                  flush=True)
            for submission, visible, hidden in report:
                print_off(submission, visible, hidden, seeds)
    if dump:
        dump.close()
    skipped = f" (parts left out: {', '.join(sorted(SKIPPED))})" if SKIPPED else ""
    print(f"over {len(seeds)} seeds{skipped}:")
    for line in tally.lines():
        print(f"  {line}")
    return 0 if tally.holds() else 1


def print_off(submission: Submission, visible: Verdicts, hidden: list[Verdicts],
              seeds: list[int]) -> None:
    """The first seed on which a submission was off its label, and what it got there."""
    labelled = submission.fails
    off = [(seed, got) for seed, got in zip(seeds, hidden, strict=True)
           if not labels_hold(labelled, names_given(got))]
    seed, got = off[0] if off else (None, {})
    passes_visible = " (passes every visible check)" if not visible else ""
    print(f"  {submission.student}{passes_visible}: off on {len(off)} seeds; seed {seed} "
          f"expected {labelled}, got:")
    for part, (mistake, message) in got.items():
        print(f"    {part} [{mistake}] {message}")


if __name__ == "__main__":
    sys.exit(main())
