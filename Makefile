# Two entry points for a fresh machine: `make demo` and `make test`. Each sets up .venv from the
# pinned set (requirements.lock) when it is missing or out of date, then runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test test-quick bench lint links lock clean system-deps

# The lock is installed by uv (pinned, with pip's package sources) and falls back to pip: infra/install.sh.
$(STAMP): requirements.lock pyproject.toml infra/install.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	bash infra/install.sh $(PY) requirements.lock
	@$(MAKE) --no-print-directory links
	@touch $(STAMP)

# doodleflow.<folder> as a real folder tree for static tools (type checkers, IDEs, import-graph tools):
# .links/doodleflow/<folder> -> the checkout's <folder> (pyproject.toml [tool.mypy], docs/architecture.md).
links:
	@mkdir -p .links/doodleflow && for d in data flows infra tasks training; do ln -sfn ../../$$d .links/doodleflow/$$d; done

demo: $(STAMP)
	$(VENV)/bin/doodleflow demo

# Two pytest workers, whole files each (module fixtures stay shared), slowest files first
# (tests/conftest.py). The suite is CPU-bound on 2 cores: more workers than cores is slower.
TEST_WORKERS ?= 2
test: $(STAMP) system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# A developer's inner loop: everything but the end-to-end files (pytest.mark.slow), ~2.5 min here.
# `make test` is the check; this one is not a substitute for it.
test-quick: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

# Debian's headless Chromium for the FiftyOne App browser test (needs root and the package registry;
# without them the test is skipped and says why).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: chromium not installed; the FiftyOne browser test will be skipped"

bench: $(STAMP)
	$(PY) bench/curation.py

lint: $(STAMP) links
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

# Re-resolve requirements.in into the full pinned set (run by a developer, never by CI).
lock:
	rm -rf /tmp/doodleflow-lock && $(PYTHON) -m venv /tmp/doodleflow-lock
	/tmp/doodleflow-lock/bin/pip install -q -r requirements.in
	/tmp/doodleflow-lock/bin/pip freeze --exclude-editable | grep -v '^doodleflow' > requirements.lock

clean:
	rm -rf $(VENV) .doodleflow .links
