# The two set-up commands of the README. Each creates .venv on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/mpspatch demo $(DEMO_ARGS)

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/python
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy --strict mpspatch
