"""The assignments of the kit, by nbgrader assignment id: how each part is called and judged."""

from ..parts import Assignment
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


def get(name: str, known: dict[str, Assignment] = ASSIGNMENTS) -> Assignment:
    """The assignment called name among the known ones, or a KeyError that lists them."""
    try:
        return known[name]
    except KeyError:
        raise KeyError(f"unknown assignment {name!r}; known: {', '.join(known)}") from None
