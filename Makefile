# Quick start: `make run` (everything on one machine, embedded defaults), `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Per-suite time budgets (seconds); together under 30 minutes (measured: unit ~60 s,
# integration ~220 s, browser ~40 s, reliability ~140 s).
UNIT_BUDGET ?= 300
INTEGRATION_BUDGET ?= 840
BROWSER_BUDGET ?= 150
RELIABILITY_BUDGET ?= 420

.PHONY: run test lint unit integration browser reliability bench clean

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

browser: $(BIN)/.installed
	timeout $(BROWSER_BUDGET) $(BIN)/pytest tests/browser -q

# Load, faults, bad input and security, small versions (bench/reliability.py: full size).
reliability: $(BIN)/.installed
	timeout $(RELIABILITY_BUDGET) $(BIN)/pytest tests/reliability -q

test: lint unit integration browser reliability

bench: $(BIN)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
