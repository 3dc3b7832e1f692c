"""Every part of every assignment: the answer key passes its visible and hidden cases, a
blank stub scores 0 with a plain message, and hidden cases differ from the visible ones."""

import pytest
import torch
from conftest import grade, solution_functions

from autograder.references import ASSIGNMENTS

PARTS = [(assignment.name, part) for assignment in ASSIGNMENTS.values()
         for part in assignment.parts]
IDS = [f"{assignment}-{part.id}" for assignment, part in PARTS]


@pytest.mark.parametrize("kind", ["visible", "hidden"])
@pytest.mark.parametrize(("assignment", "part"), PARTS, ids=IDS)
def test_solution_scores_full_marks(assignment, part, kind):
    result = grade(assignment, part.id, solution_functions(assignment)[part.function], kind)
    assert result.passed, result.message
    assert result.score == part.points


@pytest.mark.parametrize(("assignment", "part"), PARTS, ids=IDS)
def test_blank_stub_scores_zero_with_a_plain_message(assignment, part):
    def stub(*args):
        raise NotImplementedError()

    result = grade(assignment, part.id, stub)
    assert result.score == 0
    assert "is not written yet" in result.message


def signature(case):
    """The shapes of a case's tensors and its other arguments: what makes it a new input."""
    return tuple(tuple(v.shape) if isinstance(v, torch.Tensor) else v for v in case.args.values())


@pytest.mark.parametrize(("assignment", "part"), PARTS, ids=IDS)
def test_hidden_cases_differ_from_visible_and_are_seeded(assignment, part):
    visible, hidden = part.cases("visible", 0), part.cases("hidden", 99)
    assert len(hidden) >= 2
    assert {signature(case) for case in hidden}.isdisjoint(signature(case) for case in visible)
    assert any(next(iter(case.args.values())).shape[0] > 1 for case in hidden)
    again = part.cases("hidden", 99)
    other = part.cases("hidden", 100)
    first = next(iter(hidden[0].args.values()))
    assert torch.equal(first, next(iter(again[0].args.values())))
    assert not torch.equal(first, next(iter(other[0].args.values())))


@pytest.mark.parametrize("assignment", ASSIGNMENTS.values(), ids=list(ASSIGNMENTS))
@pytest.mark.parametrize("seed", [0, 1, 712_926_403])
def test_no_part_s_hidden_input_holds_another_part_s_answer(assignment, seed):
    """The sandbox holds every part's hidden inputs at once: none may be (close to) what
    another part must return on its own hidden cases."""
    inputs = [(part.id, value) for part in assignment.parts
              for case in part.cases("hidden", seed) for value in case.args.values()
              if isinstance(value, torch.Tensor) and value.is_floating_point()]
    for part in assignment.parts:
        for case in part.cases("hidden", seed):
            for name, answer in part.reference(*case.args.values()).items():
                leaked = [other for other, value in inputs if other != part.id
                          and value.shape == answer.shape
                          and torch.allclose(value, answer.to(value.dtype), rtol=1e-3)]
                assert not leaked, f"{part.id}'s {name} is an input of {leaked}"
