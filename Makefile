# One entry point for set-up, the demo and the checks. Every target installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ichprog-installed
OUT    ?= demo-out

.PHONY: install demo demo-quick test lint typecheck pytest docs examples wheel-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a several-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# every extra (all), the test and build tools (dev) and the documentation (docs)
	$(PY) -m pip install --quiet -e '.[all,dev,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## the main job: the whole paper protocol on the phantom cohort -> $(OUT)/report.html
	$(VENV)/bin/ichprog demo --out $(OUT)

demo-quick: $(STAMP)
	$(VENV)/bin/ichprog demo --quick --out $(OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy src/ichprog

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

examples: $(STAMP)
	@set -e; for f in $(wildcard examples/*.py); do echo "== $$f"; ICHPROG_EXAMPLE_SMALL=1 $(PY) $$f; done

# the sdist and wheel as a user installs them: the wheel alone (core, no extra) in a fresh venv
wheel-check: $(STAMP)
	DEV_PYTHON=$(PY) PYTHON=$(PYTHON) .ci/check_wheel.sh

test: lint typecheck pytest docs examples wheel-check  ## everything CI runs

bench: $(STAMP)
	@set -e; for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
