"""The bundled generators' 4-bit GGUF weights run as they are, through llama.cpp, on the CPU.

``LlamaCppGenerator`` implements ``rag.generate.Generator`` and the engine's refusal probe
(``continuation_probability``) over a model folder's ``model.gguf`` (kept there by
``docqa models fetch``). The prompt's token ids come from the folder's own transformers
tokenizer and chat template, exactly as ``TransformersGenerator`` builds them, and are fed to
llama.cpp as ids: both runtimes see the same tokens. Decoding is greedy (argmax) here, in Python,
one llama.cpp step per token.

One llama.cpp context holds one sequence: each call keeps what the previous one left in the KV
cache up to the longest common token prefix and prefills only the rest (docqa's rules and worked
examples open every prompt), and a lock serialises callers (the Streamlit app's threads). The
rules and examples differ per answer language, so an English question after a Spanish one would
prefill them again: the KV of the last few prompts is kept as snapshots (``PrefixSnapshots``, a
few MB each for the 0.5B model) and the one sharing the longest prefix is restored when it saves
more than the cache in hand. It does not sample, batch several questions, or run on a GPU.

Needs ``llama-cpp-python`` (built from source; see the README and the Makefile's
``LLAMA_CMAKE_ARGS``).
"""

from __future__ import annotations

import codecs
import json
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ingest.errors import GeneratorUnavailable
from ingest.records import Message
from ingest.registry import GGUF_FILE
from rag.generate import AvoidStart

INSTALL_HINT = (
    "run 'make setup' (builds llama-cpp-python 0.3.36 from source with portable flags, about "
    "15 min on 2 cores), or pip install llama-cpp-python==0.3.36 diskcache with the Makefile's "
    'LLAMA_CMAKE_ARGS as CMAKE_ARGS; or set generator_runtime = "torch"'
)


class LlamaCppGenerator:
    """A model folder's ``model.gguf`` through llama.cpp, greedy decoding, on the CPU.

    Args:
        folder: a generator folder holding ``model.gguf`` and the transformers tokenizer files
            (a bundled Qwen2.5 after ``docqa models fetch``).
        name: shown in answers; defaults to the folder name (as ``TransformersGenerator``, so the
            fitted refusal decision for the model is found).
        threads: CPU threads for prefill and decoding (0: every core).
        context_window: cap on prompt + answer tokens, also the KV cache's size.
    """

    runtime = "llama.cpp"

    def __init__(
        self, folder: str, *, name: str | None = None, threads: int = 0, context_window: int = 4096
    ) -> None:
        gguf = Path(folder) / GGUF_FILE
        if not gguf.is_file():
            raise GeneratorUnavailable(
                f"{folder} has no {GGUF_FILE} for llama.cpp; run 'docqa models fetch "
                f"{Path(folder).name}' (adds it to a folder fetched before), or set "
                'generator_runtime = "torch"'
            )
        Llama = _import_llama()
        from transformers import AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise GeneratorUnavailable(
                f"cannot load generator {folder}: {err}; run 'docqa models verify'"
            ) from None
        self.context_window = min(context_window, int(config.get("max_position_embeddings", context_window)))
        threads = threads or os.cpu_count() or 1
        try:
            self._llm = Llama(
                model_path=str(gguf),
                n_ctx=self.context_window,
                n_threads=threads,
                n_threads_batch=threads,
                # Prefill decides the first token: flash attention read a 400-token prompt in
                # 2.75 s instead of 3.1 s on the 2-core VM (bench/README.md, first token).
                flash_attn=True,
                verbose=False,
            )
        except (OSError, ValueError, RuntimeError) as err:
            raise GeneratorUnavailable(
                f"llama.cpp cannot load {gguf}: {err}; run 'docqa models verify'"
            ) from None
        self.name = name or Path(folder).name
        stops = {self._tokenizer.eos_token_id, self._tokenizer.convert_tokens_to_ids("<|im_end|>")}
        stops.add(self._llm.token_eos())
        self._stops = frozenset(t for t in stops if isinstance(t, int) and t >= 0)
        self._lock = threading.Lock()
        self._logits: np.ndarray | None = None  # next-token logits after the KV's first _logits_n
        self._logits_n = -1
        self._snapshots = PrefixSnapshots()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Sequence[Message], *, generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat-formatted prompt: the same as ``TransformersGenerator.prompt_ids``."""
        return list(
            self._tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=generation_prompt,
                return_dict=True,
            )["input_ids"]
        )

    def stream(
        self, messages: Sequence[Message], max_new_tokens: int = 256, *, avoid: str = ""
    ) -> Iterator[str]:
        """Yield the answer's text as it is decoded, whole UTF-8 characters only; with ``avoid``,
        the answer does not go on into that text past its first token (``AvoidStart``).

        Holds the model until the answer ends or the iterator is closed.
        """
        ids = self.prompt_ids(messages)
        rule = AvoidStart(self._tokenizer(avoid, add_special_tokens=False)["input_ids"] if avoid else [])
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with self._lock:
            sequence = list(ids)
            for _ in range(max_new_tokens):
                if len(sequence) >= self.context_window:
                    break
                logits = self._next_logits(sequence)
                banned = rule.forbidden(sequence[len(ids) :])
                if banned is not None:
                    logits = logits.copy()
                    logits[banned] = -np.inf
                token = int(np.argmax(logits))
                if token in self._stops:
                    break
                sequence.append(token)
                piece = decoder.decode(self._llm.detokenize([token]))
                if piece:
                    yield piece
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail

    def continuation_probability(self, messages: Sequence[Message], text: str) -> float:
        """The model's probability that its answer to ``messages`` starts with ``text``.

        The prompt's uncached tokens are prefilled and kept (a ``stream`` of the same messages
        right afterwards starts decoding at once); ``text``'s tokens go through one more batch
        whose logits are read for every position, then are dropped from the cache.
        """
        wanted = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        if not wanted:
            return 1.0
        ids = self.prompt_ids(messages)
        with self._lock:
            if len(ids) + len(wanted) > self.context_window:
                raise GeneratorUnavailable(
                    f"prompt of {len(ids)} tokens does not fit the context window ({self.context_window})"
                )
            rows = [self._next_logits(ids)]
            rows.extend(self._logits_of_batch(wanted[:-1], len(ids)))
        return math.exp(sum(_log_softmax(row)[token] for row, token in zip(rows, wanted, strict=True)))

    def _next_logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits of the token after ``ids``, leaving the KV cache holding exactly ``ids``.

        Reuses the longest common prefix with what the cache holds, and the logits last read
        when they are for ``ids`` (caller holds the lock).
        """
        llm = self._llm
        if not ids:
            raise GeneratorUnavailable("empty prompt")
        if len(ids) > self.context_window:
            raise GeneratorUnavailable(
                f"prompt of {len(ids)} tokens does not fit the context window ({self.context_window})"
            )
        same = _common_prefix(llm.input_ids[: llm.n_tokens], ids)
        if same >= len(ids) and self._logits_n == len(ids) and self._logits is not None:
            llm.n_tokens = len(ids)  # the cells after it are removed by the next eval
            return self._logits
        if same < len(ids) - SNAPSHOT_MIN_TOKENS:
            same = max(same, self._restore(ids, same))
        start = min(same, len(ids) - 1)  # at least one token goes in, for its logits
        llm.n_tokens = start
        self._logits_n = -1
        try:
            llm.eval(ids[start:])
        except RuntimeError as err:  # llama_decode failed (out of memory, a full cache)
            raise GeneratorUnavailable(f"llama.cpp could not run the prompt: {err}") from err
        self._logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm._n_vocab,)).copy()
        self._logits_n = len(ids)
        if len(ids) - start >= SNAPSHOT_MIN_TOKENS:  # a prompt's prefill, not one decoding step
            self._snapshots.add(ids, self._sequence_state())
        return self._logits

    def _sequence_state(self) -> bytes:
        """The KV cache of sequence 0 as llama.cpp serialises it."""
        import ctypes

        import llama_cpp

        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        return bytes(buffer[:written])

    def _restore(self, ids: Sequence[int], same: int) -> int:
        """Load the snapshot sharing the longest prefix with ``ids`` when it beats the ``same``
        tokens the cache holds by ``SNAPSHOT_MIN_TOKENS``; how many tokens are then reusable."""
        import ctypes

        import llama_cpp

        found = self._snapshots.best(ids)
        if found is None or found[0] < same + SNAPSHOT_MIN_TOKENS:
            return same
        shared, tokens, state = found
        llm = self._llm
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if not llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(state), 0):
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)  # a failed load may leave anything: start afresh
            llm.n_tokens = 0
            return 0
        llm.input_ids[: len(tokens)] = tokens
        llm.n_tokens = len(tokens)
        return shared

    def _logits_of_batch(self, tokens: Sequence[int], position: int) -> list[np.ndarray]:
        """Next-token logits after each of ``tokens`` placed at ``position`` on; the KV cache's
        token count is left unchanged, so they are dropped by the next eval."""
        llm = self._llm
        rows: list[np.ndarray] = []
        # Cells a previous probe left past ``position`` would break llama.cpp's rule that a
        # sequence's positions follow on (llama_decode -1 when the same question is probed twice).
        llm._ctx.kv_cache_seq_rm(-1, position, -1)
        for i in range(0, len(tokens), llm.n_batch):
            chunk = list(tokens[i : i + llm.n_batch])
            llm._batch.set_batch(batch=chunk, n_past=position + i, logits_all=True)
            try:
                llm._ctx.decode(llm._batch)
            except RuntimeError as err:
                raise GeneratorUnavailable(f"llama.cpp could not score the text: {err}") from err
            block = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(chunk), llm._n_vocab))
            rows.extend(np.array(block))
        return rows


SNAPSHOT_MIN_TOKENS = 32  # a snapshot is taken after, and restored to save, at least this many tokens
SNAPSHOT_SLOTS = 4  # prompts kept: the answer languages in use, with room to spare


class PrefixSnapshots:
    """The KV caches of recent prompts, to restore the one sharing the longest token prefix.

    A new prompt replaces the snapshots it shares at least half of their tokens with (the same
    language's rules and examples: the newest stands for them), then the oldest beyond
    ``SNAPSHOT_SLOTS``.

    >>> shots = PrefixSnapshots(slots=2)
    >>> shots.add([1, 2, 3, 4], b"en1"); shots.add([7, 8, 9], b"es"); shots.add([1, 2, 3, 5], b"en2")
    >>> [state for _, state in shots.items]
    [b'es', b'en2']
    >>> shots.best([1, 2, 3, 9])[0], shots.best([5]) is None
    (3, True)
    """

    def __init__(self, slots: int = SNAPSHOT_SLOTS) -> None:
        self.slots = slots
        self.items: list[tuple[np.ndarray, bytes]] = []

    def add(self, ids: Sequence[int], state: bytes) -> None:
        """Keep ``state``, the KV cache holding exactly ``ids``."""
        tokens = np.asarray(ids, dtype=np.int64)
        others = [(old, kept) for old, kept in self.items if _common_prefix(old, ids) * 2 < len(old)]
        self.items = [*others[len(others) - self.slots + 1 :], (tokens, state)]

    def best(self, ids: Sequence[int]) -> tuple[int, np.ndarray, bytes] | None:
        """(shared prefix length, tokens, state) of the snapshot sharing most with ``ids``;
        None when none shares a token."""
        scored = [(_common_prefix(tokens, ids), tokens, state) for tokens, state in self.items]
        found = max(scored, key=lambda item: item[0], default=None)
        return found if found is not None and found[0] > 0 else None


def _import_llama():
    """``llama_cpp.Llama``, its OpenMP threads made to sleep rather than spin while they wait.

    llama.cpp meets its threads at a barrier after every operation, hundreds of times a token.
    libgomp's default is to spin there; when another process holds one of two cores the spinning
    thread starves the one it waits for: decoding measured 0.9 tokens/s instead of 6.3 on this
    project's busy 2-core VM. libgomp reads OMP_WAIT_POLICY once, when llama.cpp's library loads
    it, so the variable is set for that import only (a value the user set is kept).
    """
    before = os.environ.get("OMP_WAIT_POLICY")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from llama_cpp import Llama
    except ImportError:
        raise GeneratorUnavailable(
            f"generator_runtime 'llama.cpp' needs the llama-cpp-python package: {INSTALL_HINT}"
        ) from None
    finally:
        if before is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
    return Llama


def _common_prefix(cached: np.ndarray, ids: Sequence[int]) -> int:
    """How many leading tokens ``cached`` and ``ids`` share.

    >>> _common_prefix(np.array([1, 2, 3, 4]), [1, 2, 9])
    2
    """
    n = min(len(cached), len(ids))
    differ = np.flatnonzero(cached[:n] != np.asarray(ids[:n], dtype=cached.dtype))
    return int(differ[0]) if differ.size else n


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log(softmax(logits))`` in float64.

    >>> [round(float(x), 4) for x in _log_softmax(np.array([0.0, 0.0]))]
    [-0.6931, -0.6931]
    """
    x = logits.astype(np.float64)
    x = x - x.max()
    return x - math.log(float(np.exp(x).sum()))
