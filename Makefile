# Two commands on a fresh clone:
#   make run    - create .venv if needed and run the server in the foreground
#   make test   - create .venv if needed, make sure mariadbd and a headless
#                 Chromium exist, run trial
#
# ARGS are passed to the server (make run ARGS="--queue-default=default");
# TESTS selects test modules (make test TESTS=tests.test_config).

PYTHON ?= python3
VENV ?= .venv
TESTS ?= tests
ARGS ?=
STAMP := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: run test venv bench

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
	@PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m twisted.trial --temp-directory=$(VENV)/_trial_temp $(TESTS)

bench: $(STAMP)
	@$(VENV)/bin/python -m bench $(ARGS)
