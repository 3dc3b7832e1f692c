"""The pool of hidden seeds and the memo of autograd references (autograder.references.graded)."""

from collections import Counter, defaultdict

import torch

from autograder.references import get
from autograder.references import graded as references
from autograder.references.graded import SeedPool, cached_reference, remembered


def test_a_student_never_gets_the_same_hidden_cases_twice():
    pool = SeedPool(size=4, uses=16)
    seeds = [pool.draw("nn_from_scratch", "alice") for _ in range(200)]
    assert len(set(seeds)) == 200


def test_a_seed_serves_at_most_its_uses_each_student_once():
    pool = SeedPool(size=4, uses=16)
    served = defaultdict(list)
    for draw in range(1000):
        student = f"s{draw % 37}"
        served[pool.draw("nn_from_scratch", student)].append(student)
    assert max(map(len, served.values())) <= 16
    assert all(len(set(students)) == len(students) for students in served.values())
    assert len(served) >= 1000 // 16


def test_the_students_of_a_class_share_a_few_seeds():
    pool = SeedPool(size=4, uses=16)
    seeds = Counter(pool.draw("single_neuron", f"student{index}") for index in range(16))
    assert len(seeds) == 4  # each seed's references are computed once for all who share it


def test_each_assignment_has_seeds_of_its_own():
    pool = SeedPool(size=1, uses=2)
    first = pool.draw("nn_from_scratch", "alice")
    assert pool.draw("two_layer_net", "bob") != first
    assert pool.draw("nn_from_scratch", "bob") == first


def test_a_reference_is_computed_once_per_distinct_input():
    calls = []

    def doubled(x, factor):
        calls.append(1)
        return {"y": factor * x}

    x = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    assert remembered(doubled, x, 2.0) is remembered(doubled, x.clone(), 2.0)
    remembered(doubled, x.T, 2.0)  # another shape
    remembered(doubled, x.float(), 2.0)  # another dtype
    remembered(doubled, x, 3.0)  # another argument
    remembered(doubled, x + 1, 2.0)  # other values
    assert len(calls) == 5


def test_the_memo_keeps_the_most_recently_used_within_its_bytes():
    calls = Counter()

    def filled(index):
        calls[index] += 1
        return {"y": torch.zeros(references.CACHE_BYTES // 3 // 8, dtype=torch.float64)}

    for index in range(3):
        remembered(filled, index)
    remembered(filled, 0)  # used again: now the most recent
    remembered(filled, 3)  # over the bytes: the least recently used (1) goes
    remembered(filled, 0)
    remembered(filled, 1)
    assert calls == {0: 1, 1: 2, 2: 1, 3: 1}


def test_two_layer_nets_training_cases_are_judged_against_the_loop_that_drew_them():
    part = get("two_layer_net").part("train")
    case = part.cases("hidden", 12345)[0]
    (reference,) = [value for key, value in references._CACHE.items()
                    if key[1] == "reference_train"
                    and key[2:] == references._fingerprints(case)]
    assert cached_reference(part, case) is reference
