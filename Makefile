# Quick start: `make run` (everything on one machine, embedded defaults), `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Per-suite time budgets (seconds); all of `make test` must stay well under 30 minutes.
UNIT_BUDGET ?= 300
INTEGRATION_BUDGET ?= 1320

.PHONY: run test lint unit integration bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "citymail needs Python 3.11 or newer (found %s)" % sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/citymail init
	$(BIN)/citymail serve

lint: $(BIN)/.installed
	$(BIN)/ruff check .

unit: $(BIN)/.installed
	timeout $(UNIT_BUDGET) $(BIN)/pytest tests/unit -q

integration: $(BIN)/.installed
	timeout $(INTEGRATION_BUDGET) $(BIN)/pytest tests/integration -q

test: lint unit integration

bench: $(BIN)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
