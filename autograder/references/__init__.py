"""The assignments the grader knows, by nbgrader assignment id: the kit's parts with their
cases, autograd references and known mistakes (grader only)."""

from ..kit import assignment_parts as kit_parts
from ..kit.parts import Assignment
from . import (
    autograd_basics,
    autograd_from_scratch,
    nn_from_scratch,
    single_neuron,
    two_layer_net,
)

ASSIGNMENTS: dict[str, Assignment] = {
    module.ASSIGNMENT.name: module.ASSIGNMENT
    for module in (nn_from_scratch, single_neuron, autograd_basics, two_layer_net,
                   autograd_from_scratch)}


def get(name: str) -> Assignment:
    """The assignment called name, with its references, or a KeyError naming the known ones."""
    return kit_parts.get(name, ASSIGNMENTS)
