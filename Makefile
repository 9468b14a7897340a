# Two commands for learners: `make lab` and `make test`. Every target is idempotent:
# the first run creates .venv from the pinned lock, later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pip arguments, for example an offline wheelhouse: PIP_ARGS="--no-index --find-links wheels"
PIP_ARGS ?=
JUPYTER_PORT ?= 8888
JUPYTER_ARGS ?=
# Jupyter refuses to run as root (containers, CI) unless told.
JUPYTER_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=

.PHONY: lab test venv doctor clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s); set PYTHON=python3.12 or similar" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock $(PIP_ARGS)
	$(BIN)/python -m pip install --quiet --no-deps -e . $(PIP_ARGS)
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --port $(JUPYTER_PORT) --ServerApp.root_dir=. $(JUPYTER_ROOT) $(JUPYTER_ARGS) notebooks/00-start-here.ipynb

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

doctor: $(STAMP)
	$(BIN)/workshop doctor

clean:
	rm -rf $(VENV) .workshop
