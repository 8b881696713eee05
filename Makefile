# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    ?= runs/demo

.PHONY: demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed

# Train a small convolutional VAE on the built-in MNIST sample, then sample, reconstruct,
# interpolate and evaluate it. About three minutes on 2 CPU cores.
demo: $(VENV)/.installed
	rm -rf $(RUN)
	$(BIN)/genlab train vae --data mnist-sample --preset demo --out $(RUN)
	$(BIN)/genlab sample $(RUN) -n 64 --out $(RUN)/samples/samples.png
	$(BIN)/genlab sample $(RUN) -n 32 --reconstruct --out $(RUN)/samples/reconstructions.png
	$(BIN)/genlab sample $(RUN) -n 8 --interpolate 10 --out $(RUN)/samples/interpolation.png
	$(BIN)/genlab eval $(RUN) --iw-samples 100

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed
	$(BIN)/python bench/likelihood_mnist.py --minutes 30

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
