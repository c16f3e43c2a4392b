# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, then run the whole pipeline on the in-silico mouse (writes runs/demo)
#   make test   create .venv with the optional extras (Ray, NWB) whose tests run for real, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/demo

EXTRAS ?= dev,ray,nwb

.PHONY: demo test lint env

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# A CPU build of torch where there is no NVIDIA GPU (a plain install may pull a multi-GB CUDA build).
	if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch; \
	else $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The optional extras, for the tests that exercise them (the core install stays without them).
$(VENV)/.extras: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/v1recon demo $(RUN)

test: $(VENV)/.extras
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
