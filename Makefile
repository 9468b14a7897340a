# Two commands for learners: `make lab` and `make test`. Every target is idempotent:
# the first run creates .venv from the pinned lock, later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The offline kit: `make wheelhouse` downloads every wheel the locks need, for Linux x86_64 and aarch64
# and macOS arm64, Python 3.11 to 3.13. Once $(WHEELHOUSE) holds wheels, every install comes from it
# alone, with no network (OFFLINE=0 uses the package index anyway). `make clean` keeps it.
WHEELHOUSE ?= wheelhouse
WHEEL_PLATFORMS ?= linux-x86_64 linux-aarch64 macos-arm64
WHEEL_PYTHONS ?= 3.11 3.12 3.13
OFFLINE ?= $(if $(wildcard $(WHEELHOUSE)/*.whl),1,0)
# Extra pip arguments for every install (offline: from the wheelhouse, never from an index)
PIP_ARGS ?= $(if $(filter 1,$(OFFLINE)),--no-index --find-links $(WHEELHOUSE),)
JUPYTER_PORT ?= 8888
JUPYTER_ARGS ?=
# Jupyter refuses to run as root (containers, CI) unless told.
JUPYTER_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=

.PHONY: lab test venv doctor clean locks wheelhouse

# The learner's environment: everything the labs, the checks and the notebooks need,
# without starting JupyterLab (`make venv`, then `source .venv/bin/activate`).
# --no-compile: Python compiles what it imports, when it first imports it; precompiling
# every module of every package would add ~120 MB that a learner never uses. (Where
# PYTHONDONTWRITEBYTECODE=1 forbids that cache, the harness keeps it in .venv/pycache:
# workshop/bytecode.py.)
venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s); set PYTHON=python3.12 or similar" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3" $(PIP_ARGS)
	$(BIN)/python -m pip install --quiet --no-compile --require-hashes -r requirements.lock $(PIP_ARGS)
	$(BIN)/python -m pip install --quiet --no-deps -e . $(PIP_ARGS)
	@rm -f $(DEV_STAMP)
	@touch $(STAMP)

# What only the tests (ruff, the browser driver) and lab 05 part 2 (the Kubernetes and
# Docker clients, schema validation) need: requirements-dev.lock, same pins and hashes.
DEV_STAMP := $(VENV)/.installed-dev
$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-compile --require-hashes -r requirements-dev.lock $(PIP_ARGS)
	@touch $(DEV_STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --port $(JUPYTER_PORT) --ServerApp.root_dir=. $(JUPYTER_ROOT) $(JUPYTER_ARGS) notebooks/00-start-here.ipynb

# Side by side: most cluster tests wait (on beats, restarts, timeouts), so several run at
# once; the tests marked `cpu` run in two chains, each on one worker, one test after the other
# (tests/conftest.py). TEST_WORKERS=0 runs one at a time,
# and so does a run against an external Redis, unless WORKSHOP_REDIS_DATABASES names databases
# the clusters may take one each: every cluster empties the database it uses.
TEST_WORKERS ?= $(if $(REDIS_URL),$(if $(WORKSHOP_REDIS_DATABASES),5,0),5)
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

doctor: $(STAMP)
	$(BIN)/workshop doctor

# Needs the network once; the venv it runs in comes from the package index (OFFLINE=0).
wheelhouse:
	$(MAKE) venv OFFLINE=0
	$(BIN)/python -m workshop.wheelhouse $(WHEELHOUSE) $(addprefix --platform ,$(WHEEL_PLATFORMS)) \
		$(addprefix --python ,$(WHEEL_PYTHONS))

# The wheelhouse stays: it may be all the room has.
clean:
	rm -rf $(VENV) .workshop

# The locks, from pyproject.toml: requirements.lock (what `make venv` installs), then, at its
# pins, requirements-kind.lock (+ the kind group), requirements-dev.lock (+ kind and test)
# and requirements-image.lock (the cms image's runtime packages, from requirements-image.in).
# Needs uv. To move a pin, edit or delete requirements.lock's line first.
UV ?= uv
UV_COMPILE = $(UV) pip compile --universal --python-version 3.11 --generate-hashes --custom-compile-command "make locks"
PINS = sed -n 's/^\([A-Za-z].*\) \\$$/\1/p' requirements-dev.lock requirements.lock 2>/dev/null | sort -u
locks:
	$(PINS) > .locks-pins.txt
	$(UV_COMPILE) pyproject.toml -c .locks-pins.txt -o requirements.lock
	$(UV_COMPILE) pyproject.toml --extra kind -c requirements.lock -o requirements-kind.lock
	$(UV_COMPILE) pyproject.toml --extra kind --extra test -c requirements.lock -o requirements-dev.lock
	$(UV_COMPILE) requirements-image.in -c requirements.lock -o requirements-image.lock
	rm -f .locks-pins.txt
