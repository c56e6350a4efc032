# companion: `make serve` runs the daemon, `make test` runs the suite. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and pinned: a bare `torch` pulls a CUDA build of several GB.
# Override on other machines, e.g. `make TORCH_SPEC="torch==2.9.1" install`.
TORCH_SPEC ?= torch==2.13.0
ARGS ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test bench lint clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/companion serve $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run $(ARGS)

lint: install
	$(BIN)/python -m compileall -q companion tests bench

clean-venv:
	rm -rf $(VENV)
