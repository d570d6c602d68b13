# One-command entry points. Both create the project virtualenv (.venv) when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# Default test selection: everything except the long real-training checks.
PYTEST_ARGS ?= -m "not slow"

.PHONY: setup demo test test-slow clean

setup:
	@bash dev/setup_venv.sh $(VENV)

demo: setup
	$(PY) tools/train_demo.py --output-dir output/demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

test-slow: setup
	$(PY) -m pytest -q -m slow tests

clean:
	rm -rf output .pytest_cache
