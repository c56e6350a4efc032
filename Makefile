# companion: `make serve` runs the daemon, `make test` runs the suite (`make test-fast`: the tests that
# need no model, embedder, browser or daemon subprocess, in seconds). They create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and pinned: a bare `torch` pulls a CUDA build of several GB.
# Override on other machines, e.g. `make TORCH_SPEC="torch==2.9.1" install`.
TORCH_SPEC ?= torch==2.13.0
ARGS ?=
PYTEST_ARGS ?=
# llama.cpp builds for this CPU (-march=native), with ggml's own thread pool instead of OpenMP:
# the OpenMP build decoded 3x slower when called from a thread other than the process's main
# thread (37 vs 110 tokens/s here), and the daemon generates on the HTTP server's worker threads.
# On CPUs with AMX (Xeon Sapphire Rapids and newer) its AMX kernels crashed every generation on
# the virtual machines here (SIGSEGV in ggml_backend_amx_mul_mat), so they are left out there; the
# AVX-512 kernels remain. Override with `make LLAMA_CMAKE_ARGS=... install`, or empty to build
# llama.cpp's defaults. It is built without pip's wheel cache, so that a wheel built earlier with
# other flags is not reused.
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DGGML_OPENMP=OFF $(if $(shell grep -qs amx_tile /proc/cpuinfo && echo yes),-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)')
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VOICE_STAMP := $(VENV)/.voice-installed

# The web page's browser tests drive Debian's Chromium (Playwright's own browser download does
# not work offline); `make browser` installs it with apt when run as root, else says how.
CHROMIUM ?= /usr/bin/chromium

.PHONY: install voice browser serve test test-fast bench lint clean-venv llama-cmake-args

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	CMAKE_ARGS="$${CMAKE_ARGS:-$(LLAMA_CMAKE_ARGS)}" $(BIN)/python -m pip install --no-cache-dir llama-cpp-python
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The voice extras (speaking: piper-tts, GPL-3.0; listening: faster-whisper, MIT), never part of the
# default install; `make test` installs them to test the voice for real.
$(VOICE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[voice]"
	touch $(VOICE_STAMP)

voice: $(VOICE_STAMP)

browser:
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "no Chromium at $(CHROMIUM): run 'sudo apt-get install chromium' (the browser tests are skipped without it)"; fi; }

serve: install
	$(BIN)/companion serve $(ARGS)

test: install voice browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The markers are set in tests/conftest.py (model, embedder, browser) and by the tests that start a
# server subprocess (serve); each of them also marks the test slow.
test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run $(ARGS)

# the flags above, for bench/throughput.py's llama-bench built like the daemon's llama.cpp
llama-cmake-args:
	@echo "$(LLAMA_CMAKE_ARGS)"

lint: install
	$(BIN)/ruff check companion tests bench
	$(BIN)/python -m mypy

clean-venv:
	rm -rf $(VENV)
