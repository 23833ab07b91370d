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

# llama-cpp-python (in the dev extra) is compiled from source by pip, for the CPU it is built on:
# AVX2 always, and the AVX-512 / VNNI / VBMI / BF16 extensions this CPU lists in /proc/cpuinfo
# (on the 2-core VM they make Qwen 1.5B's first token 2.74 s instead of 3.79 s,
# bench/results/first_token-1.5b-llama.cpp-avx*.json). Named flags, not -march=native, which
# crashed in the first decode on an AMX/AVX-512 VM; AMX stays off. Tools, tests, server and the
# multimodal library are left out. 3.5 min on the quiet 2-core VM (14 on a busy one), once: pip
# caches the wheel, so later installs take seconds. That cache does not know the flags: after
# changing them, or moving to another CPU, reinstall with CMAKE_ARGS set and pip's --no-cache-dir
# --force-reinstall (LLAMA_CPU_ARGS= builds the portable AVX2 library).
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
LLAMA_CPU_ARGS ?= $(if $(filter avx512f,$(CPU_FLAGS)),-DGGML_AVX512=ON) \
	$(if $(filter avx512_vnni,$(CPU_FLAGS)),-DGGML_AVX512_VNNI=ON) \
	$(if $(filter avx512vbmi,$(CPU_FLAGS)),-DGGML_AVX512_VBMI=ON) \
	$(if $(filter avx512_bf16,$(CPU_FLAGS)),-DGGML_AVX512_BF16=ON) \
	$(if $(filter avx_vnni,$(CPU_FLAGS)),-DGGML_AVX_VNNI=ON)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	$(strip $(LLAMA_CPU_ARGS)) \
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
