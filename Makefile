# backprop-lab: every target creates .venv from constraints.txt when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo hub test quick lint release bench sweep screenshots constraints clean preflight
N ?= 100
# The suite's hundreds of Python processes read the checkout's modules compiled once, even
# where the environment sets PYTHONDONTWRITEBYTECODE (__pycache__ is ignored by git).
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest
HUB_PORT ?= 8000
SEEDS ?= 100

preflight:  ## the Python version, venv and bubblewrap, said (or installed) before anything else
	@$(PYTHON) autograder/preflight.py

# pip compiles what it installs on one core, compileall on every core (-j 0): 43 s in place
# of 57 on 2. Where -j 0 cannot run (no usable /dev/shm for its semaphores), the serial pass
# compiles all; over a compiled venv it takes a second. Like pip, both leave a file this
# Python cannot compile (torch ships a few for newer ones) to be compiled on import, hence
# the `|| true`.
$(BIN)/activate: pyproject.toml constraints.txt | preflight
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -c constraints.txt -e '.[dev]'
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	$(BIN)/python -m compileall -qq $(VENV)/lib || true
	touch $(BIN)/activate

demo: preflight $(BIN)/activate  ## a simulated class through the whole nbgrader cycle
	$(BIN)/python -m autograder demo

hub: preflight  ## a real JupyterHub for the course on 127.0.0.1:$(HUB_PORT), as root; Ctrl-C stops it (its own environment in /var/lib/backprop-lab, no .venv)
	$(PYTHON) -m autograder.hub --port $(HUB_PORT)

test: preflight $(BIN)/activate  ## lint, then the test suite: a test file per worker, a worker per core and one more
	$(BIN)/ruff check .
	$(PYTEST) -q -n $$(($$(nproc) + 1)) --dist loadfile

quick: $(BIN)/activate  ## the edit loop: lint, then every test not marked slow (each module imported)
	$(BIN)/ruff check .
	$(PYTEST) -q -n auto -m "not slow"

lint: $(BIN)/activate
	$(BIN)/ruff check .

release: $(BIN)/activate  ## regenerate assignments/ and solutions/ from source/
	$(BIN)/python -m autograder release

bench: $(BIN)/activate  ## the engine vs nbgrader autograde on N submissions; each assignment's marginal cost; the service on a burst of N
	$(BIN)/python bench/bench.py --n $(N)
	$(BIN)/python bench/marginal_cost.py
	$(BIN)/python bench/service_latency.py --n $(N)

sweep: $(BIN)/activate  ## the answer keys and the mistake corpus on SEEDS hidden seeds each
	$(BIN)/python bench/seed_sweep.py --seeds $(SEEDS)

screenshots: $(BIN)/activate  ## docs/*.png from the demo's pages (needs chromium; run make demo first)
	$(BIN)/python docs/screenshots.py

constraints: $(BIN)/activate  ## re-pin every package after a deliberate upgrade
	$(BIN)/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > constraints.txt

clean:
	rm -rf build .pytest_cache
