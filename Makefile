# `make demo` and `make test` create .venv if needed, install into it, then do their job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# An existing demo run is continued (--resume 1): an interrupted demo picks up where it stopped, a finished one
# goes straight to the probe; `make clean` starts it afresh. Each line must succeed for the next to run.
demo: $(STAMP)
	$(PY) main.py --config config/demo.yaml $$(test -f runs/demo/checkpoints/last.ckpt && echo --resume 1)
	$(PY) linear_evaluation.py --config config/demo.yaml --run_name demo_linear \
		--checkpoint_path runs/demo/checkpoints/last.ckpt --compare_random 1

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf runs data exports .pytest_cache
