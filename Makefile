# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, then run the whole pipeline on the in-silico mouse (writes runs/demo)
#   make test   create .venv, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/demo

.PHONY: demo test lint env

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# A CPU build of torch where there is no NVIDIA GPU (a plain install may pull a multi-GB CUDA build).
	if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch; \
	else $(PY) -m pip install -q torch==2.13.0; fi
	# the nwb extra too, so that the import/export tests run for real
	$(PY) -m pip install -q -e '.[dev,nwb]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/v1recon demo $(RUN)

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
