"""Shared fixtures: the solution functions of an assignment, taken from its source notebook."""

import pytest
import torch

from autograder.submissions import solutions


def solution_functions(assignment: str) -> dict:
    """Execute the answer cells of the source notebook; return the names they define."""
    namespace = {"torch": torch}
    for code in solutions(assignment).values():
        exec(code, namespace)
    return namespace


@pytest.fixture(scope="session")
def nn_solution():
    return solution_functions("nn_from_scratch")
