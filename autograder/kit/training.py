"""What a training loop did with its optimizer: evidence for a name, recorded where the
student's code runs as plain numbers, judged on the trusted side.

A loop whose parameters never move may have cleared the gradients between `backward()` and
`optimizer.step()`, never called `step()`, never called `backward()`, or stepped another
model's optimizer: the outputs alone cannot tell which. The call records, at each step, whether
every gradient the optimizer holds is empty although the backward() before it filled some.
"""

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .diagnosis import Finding
from .parts import ReturnSpec, unpack

# The output a recording call adds: (steps taken, steps that found every gradient cleared
# although the backward() before them had filled some).
STEPS = "optimizer steps"


class _Steps:
    """Counts the optimizer steps while the student's function runs, and those that found
    every gradient empty (None or zero) although a backward() since the step before had
    left one of that optimizer's gradients nonzero. An optimizer is known from its first
    step on (its parameters, whose gradients backward() fills, are unknown before): a hook on
    each of its parameters then notes what backward() accumulates there."""

    def __init__(self):
        self.optimizers: list = []
        self.hooks: list = []
        self.filled = False  # a backward() left a known optimizer's gradient nonzero
        self.steps = [0, 0]

    def before_step(self, optimizer, _args, _kwargs) -> None:
        self.steps[0] += 1
        if any(known is optimizer for known in self.optimizers):
            self.steps[1] += self.filled and _empty(_gradients(optimizer))
        else:
            self.optimizers.append(optimizer)
            self.hooks += [param.register_post_accumulate_grad_hook(self._accumulated)
                           for group in optimizer.param_groups for param in group["params"]]
        self.filled = False

    def _accumulated(self, param) -> None:
        self.filled = self.filled or bool(param.grad is not None and param.grad.any())

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def _gradients(optimizer) -> list:
    return [p.grad for group in optimizer.param_groups for p in group["params"]]


def _empty(grads: list) -> bool:
    return all(grad is None or not grad.any() for grad in grads)


def recording_steps(function_name: str, returns: tuple[ReturnSpec, ...],
                    sequences: frozenset[str]):
    """A `Part.call` for a training function that returns `returns` (`sequences` among them
    may be lists): its values, then STEPS."""
    def call(function, *args):
        record = _Steps()
        handle = register_optimizer_step_pre_hook(record.before_step)
        try:
            result = function(*args)
        finally:
            handle.remove()
            record.remove()
        unpack(function_name, result, returns, sequences)  # a clear StudentError if not
        return (*result, torch.tensor(record.steps, dtype=torch.float64))

    return call


def cleared_before_step(_case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    """Evidence: a step found every gradient cleared although backward() had filled them."""
    steps = outputs[STEPS]
    if steps.shape != (2,) or not steps[1] > 0:
        return None
    return Finding("optimizer.step() found every gradient empty although backward() had just "
                   "filled them: the gradients were cleared between backward() and the step "
                   "(optimizer.zero_grad() in between), so the step had nothing to apply and "
                   "the parameters never moved. Clear them before backward().",
                   "cleared_before_step")
