# docqa task runner. `make run` and `make test` do their own set-up and are idempotent.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.docqa-installed
# Models live in the user cache unless DOCQA_MODELS_DIR says otherwise.
export DOCQA_MODELS_DIR ?= $(HOME)/.cache/docqa/models

.PHONY: run test lint bench setup models index browser ocr clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python (in the dev extra) is compiled from source by pip. Portable x86-64 flags:
# -march=native crashed in the first decode on an AMX/AVX-512 VM; tools, tests, server and the
# multimodal library are left out. About 14 min on the busy 2-core VM, once: pip caches the
# wheel, so later installs take seconds. That cache does not know the flags: after changing
# them, reinstall with CMAKE_ARGS set and pip's --no-cache-dir --force-reinstall.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
	-DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF

# torch 2.13.0 first: it is the CPU build on disk; an unpinned torch would pull CUDA (GBs).
$(STAMP): export CMAKE_ARGS = $(LLAMA_CMAKE_ARGS)
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

models: setup
	$(BIN)/docqa models fetch

index: models
	$(BIN)/docqa ingest corpus/

# Debian's chromium for the app's end-to-end test; playwright drives it (no browser download).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Debian's Tesseract with its English and Spanish packs: OCR of scanned PDF pages (ingest/ocr.py).
OCR_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-spa
ocr:
	@command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx eng \
		&& tesseract --list-langs 2>/dev/null | grep -qx spa \
		|| (apt-get update -qq && apt-get install -y -qq $(OCR_PACKAGES))

run: index ocr
	$(BIN)/docqa ui

test: models browser ocr
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check ingest rag ui tests bench
	$(BIN)/ruff format --check ingest rag ui tests bench

# The hot paths, each against the raw model limit and the peer it replaces (bench/README.md).
BENCH_INDEX ?= out/bench-corpus-index
bench: models
	$(BIN)/python bench/bench_ingest.py --limit-files 30
	$(BIN)/python bench/bench_retrieval.py --sizes 10000 100000
	$(BIN)/docqa ingest corpus/ --index $(BENCH_INDEX)
	$(BIN)/python bench/bench_generation.py --index $(BENCH_INDEX) --ks 3 --sizes 300

clean:
	rm -rf $(VENV) .pytest_cache
