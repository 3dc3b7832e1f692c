"""The assignments the grader knows, by nbgrader assignment id: the kit's parts with their
cases, autograd references and known mistakes (grader only). One module here per assignment
of the kit, under the same name."""

import importlib

from ..kit import assignment_parts as kit_parts
from ..kit.parts import Assignment

ASSIGNMENTS: dict[str, Assignment] = {
    name: importlib.import_module(f".{name}", __name__).ASSIGNMENT
    for name in kit_parts.ASSIGNMENTS}


def get(name: str) -> Assignment:
    """The assignment called name, with its references, or a KeyError naming the known ones."""
    return kit_parts.get(name, ASSIGNMENTS)
