"""One frozen settings object, read once at the entry point and passed down.

Precedence, lowest first: defaults, a TOML file when one is given (``--config FILE`` or
``$DOCQA_CONFIG``), environment variables ``DOCQA_<FIELD>``, then explicit overrides (CLI flags,
UI controls). A ``docqa.toml`` that merely lies in the working folder is not read: a folder
someone else wrote could otherwise pick the generator, its server and the key it is sent.
Every value is checked here, with the bad value in the message.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ingest.errors import ConfigError
from ingest.ocr import OCR_ENGINES

APP_NAME = "docqa"
EMBED_BACKENDS = ("torch", "onnx", "onnx-int8")
GENERATOR_RUNTIMES = ("auto", "torch", "llama.cpp")
TABLES = ("on", "off")
STORES = ("local", "milvus")


def _user_dir(kind: str) -> Path:
    from platformdirs import user_cache_dir, user_data_dir

    return Path(user_cache_dir(APP_NAME) if kind == "cache" else user_data_dir(APP_NAME))


@dataclass(frozen=True)
class Settings:
    # Index folder: catalog.sqlite + vectors.faiss + manifest.json.
    index_dir: Path = dataclasses.field(default_factory=lambda: _user_dir("data") / "index")
    # Where the vectors are searched: "local" (vectors.faiss in the index folder) or "milvus" (a
    # Milvus collection; the catalog, its FTS5 lexical search and the files list stay in the index
    # folder either way: ingest.milvus_store).
    store: str = "local"
    # Milvus: "" (a Milvus Lite file, milvus.db in the index folder), another Milvus Lite file
    # ending in .db, or a server URL such as http://localhost:19530.
    milvus_uri: str = ""
    # Milvus: the prefix of the index's collection name (letters, digits, underscores).
    milvus_collection: str = "docqa"
    # Where bundled models are assembled; $DOCQA_MODELS_DIR or --models-dir.
    models_dir: Path = dataclasses.field(default_factory=lambda: _user_dir("cache") / "models")
    # Embedder: a bundled name (see `docqa models list`), a local sentence-transformers folder,
    # or a model name sentence-transformers can load from your own hub/cache.
    embedder: str = "embeddinggemma-300m"
    # Generator: a bundled name, a local transformers model folder, or "openai" for an
    # OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI).
    generator: str = "qwen2.5-coder-0.5b-instruct"
    # How a bundled or local generator runs: "torch" (the safetensors folder in fp32), "llama.cpp"
    # (the folder's model.gguf, 4-bit, through llama-cpp-python: a third of the memory, faster
    # decoding, the same answers on the bench; bench/bench_runtimes.py), or "auto": each bundled
    # generator on the runtime its refusal decision was fitted on and that answers it sooner
    # (the 0.5B on torch: first token 1.0 s vs 1.3 s; the 1.5B on llama.cpp: 2.7 s vs 5-15 s),
    # a local folder on llama.cpp where it has a model.gguf; torch where llama.cpp cannot run.
    generator_runtime: str = "auto"
    # OpenAI-compatible server: base URL, model name, and the environment variable with the key.
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = ""
    openai_api_key_env: str = "OPENAI_API_KEY"
    # Chunking, in the embedder's own tokens; chunks never exceed the model's max input.
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    # Files larger than this are skipped with a reason.
    max_file_mb: float = 64.0
    # PDF pages without a text layer (scans): "tesseract" reads them with Tesseract OCR in English
    # and Spanish (Debian's tesseract-ocr, -eng, -spa: `make ocr`), "off" skips them with a warning.
    # A missing Tesseract is a warning in the ingest report, never an error (ingest.ocr).
    ocr: str = "tesseract"
    # Resolution scanned pages are rendered at for OCR. On clean renders of the manuals 200 read as
    # well (CER 0.031 vs 0.033) and 1.3x faster (bench/bench_ocr.py); 300, Tesseract's own advice,
    # keeps small print and noisy real scans legible.
    ocr_dpi: int = 300
    # Tables (PDF ruled tables, HTML, EPUB and Word tables): "on" reads each as a Markdown table,
    # chunked between rows with its header repeated (ingest.tables); "off" reads them as before,
    # PDF cells as a stream of text, HTML/Word rows as lines. After a switch the next ingest reads
    # every file of the folder again once (ingest.pipeline).
    tables: str = "on"
    # Texts per embedding batch (memory stays bounded by this, not by the folder size).
    embed_batch_size: int = 16
    # How the embedder runs: "onnx-int8" (ONNX Runtime, int8 weights: ~3x torch on EmbeddingGemma,
    # nDCG@10 within 1 % on the dev set, bench/bench_embed_backends.py), "onnx" (ONNX Runtime, the
    # fp32 vectors: 1.5x) or "torch". The ONNX ones export the model once into
    # models_dir/.derived ('docqa models fetch' does it). int8 vectors differ from fp32 ones, so
    # an index built with "torch"/"onnx" is used with one of those two, or rebuilt.
    embed_backend: str = "onnx-int8"
    # Passages given to the generator (and shown as the answer's sources). 1: shown three, the
    # 0.5B generator answers from a neighbour of the best one as often as not (dev answers ranked
    # first by retrieval: 33 of 47 cited with 3 passages, 46 of 47 with 1; where the gold was
    # ranked 2nd-3rd it found it 4 times in 20; bench/passage_choice.py), so one passage with the
    # whole context_tokens budget cites better end to end (bench/eval_lopo.py; bench/README.md).
    # A larger generator may earn more: raise it here or in the app's sidebar.
    top_k: int = 1
    # Weight of the dense score in the fusion; the lexical (BM25) score gets 1 - dense_weight.
    # Negative: the embedder's own weight (``rag.retrieve.DENSE_WEIGHT``, chosen leave-one-product-
    # out on the dev set: EmbeddingGemma 0.9, all-MiniLM-L6-v2 0.6); 0..1 sets it for any embedder.
    dense_weight: float = -1.0
    # Added to the fused score of passages in the question's language (manuals often ship in
    # several languages): nDCG@10 +0.001 en / +0.018 es on the dev set at 0.1.
    same_language_bonus: float = 0.1
    # Below this dense cosine of the best passage the engine answers "not in the documents"
    # without the model. Negative: the fitted decision's gate for this embedder and generator
    # (rag/refusal_models.json), else rag.refusal.MIN_RELEVANCE (EmbeddingGemma 0.35, MiniLM 0.30;
    # 0, never, for embedders not calibrated).
    min_relevance: float = -1.0
    # Negative (default): the engine refuses when the fitted decision (rag.refusal.RefusalModel:
    # relevance, question-word overlap and the generator's probability of starting its answer with
    # the refusal sentence, together) says the documents do not answer. 0 to 1: instead, one
    # threshold on that probability; 1 leaves refusing to the model's own answer. Generators that
    # cannot score (an OpenAI server) skip it.
    refusal_probability: float = -1.0
    # Token budget for the numbered passages in the prompt (shared between them; each is cut to
    # its lines about the question), and the longest answer.
    context_tokens: int = 300
    max_new_tokens: int = 256
    # Answer language: "auto" (the question's) or a fixed code such as "en" or "es".
    answer_language: str = "auto"
    # CPU threads for torch and llama.cpp; 0 lets torch decide (llama.cpp: every core).
    threads: int = 0
    # `docqa serve`: the largest request body accepted (an upload with its form fields); a larger
    # one is refused with 413 before it is read. Keep it above max_file_mb to upload big manuals.
    serve_max_body_mb: float = 100.0

    def __post_init__(self) -> None:
        _check(self.chunk_tokens >= 16, "chunk_tokens", self.chunk_tokens, "use at least 16")
        _check(
            0 <= self.chunk_overlap < self.chunk_tokens // 2,
            "chunk_overlap",
            self.chunk_overlap,
            "use 0 up to half of chunk_tokens",
        )
        _check(self.max_file_mb > 0, "max_file_mb", self.max_file_mb, "use a positive size")
        _check(self.embed_batch_size >= 1, "embed_batch_size", self.embed_batch_size, "use >= 1")
        _check(
            self.embed_backend in EMBED_BACKENDS,
            "embed_backend",
            self.embed_backend,
            f"use one of {', '.join(EMBED_BACKENDS)}",
        )
        _check(
            self.generator_runtime in GENERATOR_RUNTIMES,
            "generator_runtime",
            self.generator_runtime,
            f"use one of {', '.join(GENERATOR_RUNTIMES)}",
        )
        _check(self.store in STORES, "store", self.store, f"use one of {', '.join(STORES)}")
        _check(
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,180}", self.milvus_collection) is not None,
            "milvus_collection",
            self.milvus_collection,
            "use letters, digits and underscores, starting with a letter",
        )
        _check(
            self.milvus_uri == "" or self.milvus_uri.endswith(".db") or "://" in self.milvus_uri,
            "milvus_uri",
            self.milvus_uri,
            "use a Milvus Lite file ending in .db, or a server URL such as http://localhost:19530",
        )
        _check(1 <= self.top_k <= 50, "top_k", self.top_k, "use 1 to 50")
        _check(self.dense_weight <= 1.0, "dense_weight", self.dense_weight, "use 0 to 1, or -1 for auto")
        _check(
            0.0 <= self.same_language_bonus <= 1.0,
            "same_language_bonus",
            self.same_language_bonus,
            "use 0 to 1",
        )
        _check(self.min_relevance <= 1.0, "min_relevance", self.min_relevance, "use 0 to 1, or -1 for auto")
        _check(
            self.refusal_probability <= 1.0,
            "refusal_probability",
            self.refusal_probability,
            "use 0 to 1, or -1 for the calibrated value",
        )
        _check(self.context_tokens >= 128, "context_tokens", self.context_tokens, "use >= 128")
        _check(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, "use >= 1")
        _check(self.threads >= 0, "threads", self.threads, "use 0 (auto) or a positive count")
        _check(self.ocr in OCR_ENGINES, "ocr", self.ocr, f"use one of {', '.join(OCR_ENGINES)}")
        _check(72 <= self.ocr_dpi <= 600, "ocr_dpi", self.ocr_dpi, "use 72 to 600 (200 to 300 read best)")
        _check(self.tables in TABLES, "tables", self.tables, f"use one of {', '.join(TABLES)}")
        _check(self.serve_max_body_mb > 0, "serve_max_body_mb", self.serve_max_body_mb, "use a positive size")
        _check(bool(self.embedder), "embedder", self.embedder, "name a model or a folder")
        _check(bool(self.generator), "generator", self.generator, "name a model or a folder")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (and checked again)."""
        return dataclasses.replace(self, **_coerce(changes))


def _check(ok: bool, name: str, value: object, fix: str) -> None:
    if not ok:
        raise ConfigError(f"bad setting {name}={value!r}: {fix}")


def _coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """Convert raw values (strings from the environment, TOML values) to the fields' types."""
    types = {f.name: f.type for f in fields(Settings)}
    out: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in types:
            raise ConfigError(f"unknown setting {name!r}: known ones are {', '.join(types)}")
        kind = types[name]
        try:
            if kind == "Path":
                out[name] = Path(raw).expanduser()
            elif kind == "int":
                out[name] = int(raw)
            elif kind == "float":
                out[name] = float(raw)
            else:
                out[name] = str(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"bad setting {name}={raw!r}: expected {kind}") from None
    return out


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and overrides.

    The file is ``config_file``, else ``$DOCQA_CONFIG``, else none (never one found by looking).
    Overrides that are None are ignored, so CLI options can be passed straight through.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or (Path(env["DOCQA_CONFIG"]) if env.get("DOCQA_CONFIG") else None)
    if path is not None:
        try:
            values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"cannot read config {path}: {err}; fix or remove the file") from None
    for f in fields(Settings):
        key = f"DOCQA_{f.name.upper()}"
        if env.get(key):
            values[f.name] = env[key]
    if env.get("DOCQA_INDEX"):
        values["index_dir"] = env["DOCQA_INDEX"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**_coerce(values))
