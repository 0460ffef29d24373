# Two commands on a fresh clone:
#   make run    - create .venv if needed and run the server in the foreground
#   make test   - create .venv if needed, make sure mariadbd and a headless
#                 Chromium exist, run trial
#   make test-all - `make test` once per supported Python (PYTHONS), each in
#                 its own venv (.venv-3.X); what CI runs (.ci/run).  A
#                 version that cannot be found fails the run, never skipped
#                 (tests/support/find-python says where it looks).
#                 PARALLEL=1 runs the versions at the same time.
#
# ARGS are passed to the server (make run ARGS="--queue-default=default");
# TESTS selects test modules (make test TESTS=tests.test_config); JOBS is
# how many trial worker processes run them (trial -j; JOBS=1 runs them in
# this process, one after another).  Most tests wait on real servers, so 3
# workers finish the suite in about a third of the time even on 2 cores.

PYTHON ?= python3
VENV ?= .venv
TESTS ?= tests
# The supported Pythons (keep in step with setup.py's python_requires and
# classifiers and the README).
PYTHONS ?= 3.11 3.12 3.13
PARALLEL ?= 0
JOBS ?= 3
ARGS ?=
STAMP := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: run test test-all venv bench

$(STAMP): setup.py
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
	@$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@tests/support/ensure-mysqlclient $(VENV)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/twistd --pidfile= -n fireworq $(ARGS)

test: $(STAMP)
	@tests/support/ensure-mariadb
	@tests/support/ensure-galera
	@tests/support/ensure-browser
	@PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m twisted.trial -j $(JOBS) --temp-directory=$(VENV)/_trial_temp $(TESTS)

# tests/support/test-all: per version, compile everything with SyntaxWarning
# as an error, then `make test` in .venv-3.X; every version runs even when
# an earlier one fails.  PARALLEL=1 runs the versions side by side.
test-all:
	@PYTHONS="$(PYTHONS)" TESTS="$(TESTS)" JOBS="$(JOBS)" PARALLEL="$(PARALLEL)" MAKE="$(MAKE)" tests/support/test-all

bench: $(STAMP)
	@$(VENV)/bin/python -m bench $(ARGS)
