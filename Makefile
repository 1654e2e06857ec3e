# `make demo`, `make test` and `make web` create .venv if needed, install into it, then do their job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WEB_DEPS := web/node_modules/.package-lock.json
# Programs the tests use as oracles or drivers (Debian packages): sox for the augmentations, chromium for
# the browser page. `make test` installs them with apt-get when it runs as root; elsewhere their tests
# are skipped, saying so.
TEST_TOOLS := sox chromium

.PHONY: install demo test test-tools web bench clean

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

$(WEB_DEPS): web/package.json web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd web && npm ci --no-audit --no-fund; \
	else echo "note: npm not found: the browser page and its tests need Node.js 20+ and npm"; fi

test-tools:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	else echo "note:$$missing not installed (apt-get install -y$$missing): their tests will be skipped"; fi

# An existing demo run is continued (--resume 1): an interrupted demo picks up where it stopped, a finished one
# goes straight to the probe; `make clean` starts it afresh. Each line must succeed for the next to run.
demo: $(STAMP)
	$(PY) main.py --config config/demo.yaml $$(test -f runs/demo/checkpoints/last.ckpt && echo --resume 1)
	$(PY) linear_evaluation.py --config config/demo.yaml --run_name demo_linear \
		--checkpoint_path runs/demo/checkpoints/last.ckpt --compare_random 1

test: $(STAMP) test-tools $(WEB_DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q tests

web: $(WEB_DEPS)
	$(PY) web/serve.py

bench: $(STAMP)
	for b in bench/bench_*.py; do case $$b in *bench_learning.py) continue;; esac; $(PY) $$b || exit 1; done

clean:
	rm -rf runs data exports web/model .pytest_cache
