# One place that installs, lints and tests the way CI does (.ci/run calls `make test`).
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned so that pip takes the CPU wheel instead of downloading a CUDA build.
TORCH := torch==2.13.0

.PHONY: install test lint types quickstart

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[postgres,ray,api,test,executorch,tflm]' $(TORCH)
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: install
	$(VENV)/bin/mypy paretoedge

test: lint
	$(VENV)/bin/pytest -m "" ; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

quickstart: install
	$(VENV)/bin/paretoedge search configs/quickstart.yaml
