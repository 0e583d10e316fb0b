# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
# torch==2.13.0 goes in first: it is a CPU build on this machine's disk, and the
# package's own `torch>=2.4` is then already satisfied (no multi-GB CUDA download).
# Both steps install under constraints.txt, the exact versions of every package
# (regenerate it with scripts/lock.sh after changing dependencies in pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# The extras `make` installs (scripts/lock.sh locks the same): dev tools, and the optional
# libraries of commands the tests cover (compress: Torch-Pruning; onnx: export; serve:
# FastAPI; loggers: TensorBoard and MLflow).
EXTRAS ?= dev,compress,onnx,serve,loggers

.PHONY: install demo test test-all lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

demo: install
	$(BIN)/trainlab train examples/mnist_mlp_dropout.yaml

test: install
	bash scripts/ensure_postgres.sh
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m trainlab.environment
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest

test-all: install
	bash scripts/ensure_postgres.sh
	bash scripts/ensure_chromium.sh
	$(BIN)/pytest -m ''

lint: install
	$(BIN)/ruff check src tests bench

bench: install
	$(BIN)/python bench/parity.py

clean:
	rm -rf $(VENV) runs
