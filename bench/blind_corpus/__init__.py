"""A labelled corpus of student submissions, written blind (issue 27's second corpus).

Written from the notebooks' prose and the names in `autograder/kit/diagnosis.py` alone,
without reading the developers' corpus (`tests/mistake_corpus.py`). Each assignment's
module holds a correct answer of its own (`BASE`: answer cells written from the prose, not
copied from the key) and submissions made from it by changing answer cells. Each submission
says which parts a careful grader takes points from, how many it keeps, and which mistake
name fits (or none); parts it does not list keep their full points.

`bench/blind_corpus.py` grades the corpus and prints the truth figures.
"""

from dataclasses import dataclass, field

# The label for a function that changes its inputs, or returns an output that aliases one.
# diagnosis.py had no name for it when this corpus was written (issue 27 asks for one), so
# the label is resolved against the names of the grader being measured
# (`blind_corpus.input_change_names`).
CHANGES_INPUTS = "<changes its inputs>"


@dataclass(frozen=True)
class Loss:
    """A part a careful grader takes points from: the points it keeps and the mistake's
    name (None: no listed name fits). `ok`: other names that would not mislead (a part that
    fails because a helper it calls is wrong may name the helper's mistake, or none)."""

    points: float = 0
    name: str | None = None
    ok: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class Submission:
    """A notebook: the base answer cells with `cells` replacing some, and its labels."""

    name: str
    assignment: str
    why: str
    cells: dict[str, str] = field(default_factory=dict)
    lost: dict[str, Loss] = field(default_factory=dict)
    changes_inputs: bool = False  # it changes an input, or returns an alias of one

    @property
    def correct(self) -> bool:
        return not self.lost


def edited(base: dict[str, str], cell: str, *replacements: tuple[str, str]) -> dict[str, str]:
    """{cell: base[cell] with each (old, new) replaced}; each old must occur exactly once."""
    source = base[cell]
    for old, new in replacements:
        if source.count(old) != 1:
            raise ValueError(f"{cell}: {old!r} occurs {source.count(old)} times")
        source = source.replace(old, new)
    return {cell: source}


def all_submissions() -> list[Submission]:
    """Every submission of the corpus, the bases (correct answers of their own) first."""
    from . import (
        autograd_basics,
        autograd_from_scratch,
        nn_from_scratch,
        single_neuron,
        two_layer_net,
    )

    modules = (nn_from_scratch, autograd_from_scratch, single_neuron, autograd_basics,
               two_layer_net)
    return [Submission(f"{module.ASSIGNMENT}/base", module.ASSIGNMENT,
                       "a correct answer of its own, written from the prose")
            for module in modules] + [s for module in modules for s in module.SUBMISSIONS]
