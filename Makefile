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
	$(PY) -m pip install -q -e '.[search,postgres,ray,api,tensor,screening,executorch,tflm,test]' $(TORCH)
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy runs on an installed copy of the package: in the checkout, search/, objectives/,
# hardware_profiles/ are only mapped into paretoedge by setuptools' package-dir, which mypy
# cannot follow (they would be Any to it). setuptools' build/lib is removed first: it keeps
# the copy of a module deleted since, which would be installed and checked again.
TYPECHECK := build/typecheck
types: install
	rm -rf $(TYPECHECK) build/lib
	$(PY) -m pip install -q --no-deps --no-build-isolation --target $(TYPECHECK) .
	cd $(TYPECHECK) && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml -p paretoedge

test: lint types
	$(VENV)/bin/pytest -m "" ; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

quickstart: install
	$(VENV)/bin/paretoedge search configs/quickstart.yaml
