"""A part's code can write the child's status.json and claim parts done: such claims must
buy it no time beyond its limit (sandbox._watch restarts a part's clock on each claim)."""

import json
from dataclasses import replace
from pathlib import Path

from autograder.engine import grade_notebook
from autograder.engine.isolation import DEFAULT_LIMITS

SOLUTION = Path(__file__).resolve().parent.parent / "solutions" / "single_neuron" / \
    "single_neuron.ipynb"

# Each call spins 8 s of its own time (16 s for the part's two cases, its limit 2 s) while
# it claims one more part done every second: parts the grader never asked for, then all.
CLAIMING = '''\
    import json, os, time
    global _claims
    _claims = globals().get("_claims", 0)
    end = time.monotonic() + 8
    while time.monotonic() < end:
        _claims += 1
        names = [f"part{i}" for i in range(_claims)] + ["relu_backprop", "dead_relu",
                 "leaky_relu", "bias", "several_inputs", "linear"][:_claims // 10]
        with open("claimed.json", "w") as file:
            json.dump({"cells_done": True, "cell_errors": [],
                       "parts": {name: [] for name in names}}, file)
        os.replace("claimed.json", "status.json")
        second = time.monotonic() + 1
        while time.monotonic() < second:
            pass
'''


def test_claiming_parts_done_buys_a_part_no_time(tmp_path):
    notebook = json.loads(SOLUTION.read_text())
    cell = next(c for c in notebook["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id") == "linear_answer")
    source = "".join(cell["source"])
    docstring = '(losses, trained weight)."""\n'
    assert docstring in source
    cell["source"] = source.replace(docstring, docstring + CLAIMING, 1)
    path = tmp_path / "single_neuron.ipynb"
    path.write_text(json.dumps(notebook))

    result = grade_notebook(path, "single_neuron", seed=7,
                            limits=replace(DEFAULT_LIMITS, part_seconds=2))

    parts = {part.part_id: part for part in result.parts}
    assert parts["linear"].score == 0
    assert "did not finish within 2 s" in parts["linear"].message
    assert parts["relu_backprop"].score == parts["relu_backprop"].max_score
