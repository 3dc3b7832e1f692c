"""The visible cases as the release ships them: one safetensors file next to each notebook.

`make release` writes `visible_checks.safetensors` beside the student's notebook. For each
part it holds every visible case's inputs, the facts its checks read (`Case.truth`),
autograd's outputs, and the outputs of the part's known mistakes; and the example data the
notebook's cells load with `example`. Tensors and a JSON layout only: nothing in it runs,
and nothing about the hidden cases is in it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load, save

from .diagnosis import KnownMistake
from .parts import Case, Part

FILE = "visible_checks.safetensors"
Outputs = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ShippedCase:
    """A visible case with what is expected of it: autograd's outputs, and each known
    mistake with the outputs it gives there."""

    case: Case
    reference: Outputs
    mistakes: tuple[tuple[KnownMistake, tuple[Outputs, ...]], ...] = ()


class Shipped:
    """The visible cases of one assignment, read from its release file: the `Expectations`
    the notebook's checks judge against."""

    def __init__(self, assignment: str, examples: dict[str, Outputs],
                 parts: dict[str, list[ShippedCase]]):
        self.assignment, self.examples, self.parts = assignment, examples, parts
        self._by_label = {(part_id, shipped.case.label): shipped
                          for part_id, cases in parts.items() for shipped in cases}

    def cases(self, part_id: str) -> list[Case]:
        if part_id not in self.parts:
            raise KeyError(f"{FILE} holds no cases of {part_id!r}: the notebook and its data "
                           f"come from different releases (fetch the assignment again)")
        return [shipped.case for shipped in self.parts[part_id]]

    def reference(self, part: Part, case: Case) -> Outputs:
        return self._by_label[part.id, case.label].reference

    def mistakes(self, part: Part, case: Case):
        return self._by_label[part.id, case.label].mistakes

    def example(self, name: str) -> tuple[torch.Tensor, ...]:
        if name not in self.examples:
            raise KeyError(f"{FILE} has no example {name!r} (it has: "
                           f"{', '.join(self.examples)})")
        return tuple(tensor.clone() for tensor in self.examples[name].values())


def dump(shipped: Shipped) -> bytes:
    """The file's bytes: every tensor under a key of its own, the rest in a JSON layout.
    The same input gives the same bytes (the release's drift test compares them)."""
    tensors: dict[str, torch.Tensor] = {}

    def put(prefix: str, named: Outputs) -> list[str]:
        for name, tensor in named.items():
            tensors[f"{prefix}/{name}"] = tensor.detach().cpu().clone().contiguous()
        return list(named)

    layout = {"assignment": shipped.assignment,
              "examples": {name: put(f"example/{name}", named)
                           for name, named in shipped.examples.items()},
              "parts": {}}
    for part_id, cases in shipped.parts.items():
        layout["parts"][part_id] = [
            {"label": item.case.label,
             "args": _layout_args(put, f"case/{part_id}/{index}/args", item.case.args),
             "truth": put(f"case/{part_id}/{index}/truth", dict(item.case.truth)),
             "reference": put(f"case/{part_id}/{index}/reference", item.reference),
             "mistakes": [{"mistake": known.mistake, "hint": known.hint,
                           "scaled": sorted(known.scaled), "first_epochs": known.first_epochs,
                           "candidates": [put(f"case/{part_id}/{index}/mistake/{k}/{c}", out)
                                          for c, out in enumerate(candidates)]}
                          for k, (known, candidates) in enumerate(item.mistakes)]}
            for index, item in enumerate(cases)]
    return save(tensors, metadata={"layout": json.dumps(layout, sort_keys=True)})


def _layout_args(put, prefix: str, args) -> list[list]:
    """[name, "tensor"] or [name, "value", v] per argument, in the call's order."""
    laid = []
    for name, value in args.items():
        if isinstance(value, torch.Tensor):
            put(prefix, {name: value})
            laid.append([name, "tensor"])
        elif value is None or isinstance(value, (bool, int, float, str)):
            laid.append([name, "value", value])
        else:
            raise TypeError(f"argument {name} is a {type(value).__name__}: a case ships "
                            f"tensors and plain numbers only")
    return laid


def loads(data: bytes, device: torch.device | None = None) -> Shipped:
    """The file's contents, its tensors on device (the CPU by default)."""
    layout = json.loads(_metadata(data)["layout"])
    tensors = {key: tensor.to(device) if device else tensor for key, tensor in load(data).items()}

    def get(prefix: str, names: list[str]) -> Outputs:
        return {name: tensors[f"{prefix}/{name}"] for name in names}

    parts = {}
    for part_id, cases in layout["parts"].items():
        parts[part_id] = []
        for index, item in enumerate(cases):
            prefix = f"case/{part_id}/{index}"
            args = {arg[0]: tensors[f"{prefix}/args/{arg[0]}"] if arg[1] == "tensor" else arg[2]
                    for arg in item["args"]}
            mistakes = tuple(
                (KnownMistake(m["mistake"], m["hint"], frozenset(m["scaled"]), m["first_epochs"]),
                 tuple(get(f"{prefix}/mistake/{k}/{c}", names)
                       for c, names in enumerate(m["candidates"])))
                for k, m in enumerate(item["mistakes"]))
            parts[part_id].append(ShippedCase(
                Case(item["label"], args, get(f"{prefix}/truth", item["truth"])),
                get(f"{prefix}/reference", item["reference"]), mistakes))
    examples = {name: get(f"example/{name}", names)
                for name, names in layout["examples"].items()}
    return Shipped(layout["assignment"], examples, parts)


def _metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes: its header is an 8-byte length, then JSON."""
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + length]).get("__metadata__", {})


def read(folder: Path, device: torch.device | None = None) -> Shipped:
    """The release file in folder, or a FileNotFoundError that says where it belongs."""
    path = folder / FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{FILE} is not in {folder}: it comes with the assignment, next "
                                f"to the notebook. Run the notebook from its own folder, or "
                                f"fetch the assignment again.") from None
    return loads(data, device)
