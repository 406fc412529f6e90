# Two environments (DESIGN.md §3): .venv (Python 3.11, torch) and .venv-lava (Python 3.10,
# lava-nc). Each target creates what it needs; stamps make re-runs cheap.
PY311      ?= python3.11
VENV       := .venv
LAVA_VENV  := .venv-lava
PY         := $(VENV)/bin/python
LAVA_PY    := $(CURDIR)/$(LAVA_VENV)/bin/python
PIP_FLAGS  ?= -q --disable-pip-version-check
PYTEST_ARGS ?=

export PSEUDOSNN_LAVA_PYTHON := $(LAVA_PY)

.PHONY: demo test venv lava-venv lint bench clean

demo: venv lava-venv            ## train, compile, simulate, run on Lava, energy report (digits)
	$(PY) examples/demo.py --out demo_output

test: venv lava-venv            ## the whole test suite, Lava tests included
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

bench: venv lava-venv
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/compile.py
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/data_memory.py

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml constraints.txt
	$(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints.txt torch
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev,crosscheck,cluster]'
	# sinabs 3.1.3 pins nir<=1.0.4 (no v_reset: snnTorch's files would not load); its NIR
	# exchange works with nir 1.0.8, so it comes without its pins (samna: Speck hardware only)
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints.txt --no-deps sinabs==3.1.3 pbr
	touch $@

lava-venv: $(LAVA_VENV)/.stamp
$(LAVA_VENV)/.stamp: pyproject.toml
	"$$(scripts/find_python310.sh)" -m venv $(LAVA_VENV)
	$(LAVA_VENV)/bin/pip install $(PIP_FLAGS) lava-nc==0.10.0 networkx
	$(LAVA_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

clean:
	rm -rf $(VENV) $(LAVA_VENV) build dist *.egg-info
