"""The assignments the grader knows, by nbgrader assignment id."""

from ..parts import Assignment
from . import autograd_basics, nn_from_scratch, single_neuron, two_layer_net

ASSIGNMENTS: dict[str, Assignment] = {
    module.ASSIGNMENT.name: module.ASSIGNMENT for module in (nn_from_scratch, single_neuron, autograd_basics, two_layer_net)
}


def get(name: str) -> Assignment:
    """The assignment called name, or a KeyError that lists the known ones."""
    try:
        return ASSIGNMENTS[name]
    except KeyError:
        raise KeyError(f"unknown assignment {name!r}; known: {', '.join(ASSIGNMENTS)}") from None
