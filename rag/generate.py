"""Generators: chat messages in, a stream of text pieces out.

``Generator`` is the one interface the query engine uses; ``TransformersGenerator`` runs a local
chat model (the bundled Qwen2.5 models, or any transformers folder) on the CPU, greedy by default
so the same question gives the same answer. Other backends (an OpenAI-compatible server) live in
their own modules and implement the same protocol.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ingest.errors import GeneratorUnavailable
from ingest.records import Message
from ingest.registry import resolve_model
from ingest.settings import Settings


@runtime_checkable
class Generator(Protocol):
    """What the query engine needs of a language model.

    Attributes:
        name: shown in answers' metadata and evaluation runs.
        context_window: tokens the model accepts, prompt and answer together.
    """

    name: str
    context_window: int

    def stream(self, messages: Sequence[Message], max_new_tokens: int = 256) -> Iterator[str]:
        """Yield the answer's text in pieces as the model produces them."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes in this model's prompt."""
        ...


PREFIX_CACHE_SIZE = 8  # prompt prefixes kept prefilled (rules + examples per language, conversations)


class TransformersGenerator:
    """A local transformers chat model, greedy decoding, on the CPU.

    Args:
        folder: a transformers model folder with a chat template (e.g. a bundled Qwen2.5).
        name: shown in answers; defaults to the folder name.
        threads: torch CPU threads (0 leaves torch's default).
        context_window: cap on prompt + answer tokens (the model may accept more; a small cap
            keeps CPU prefill fast).
    """

    runtime = "torch"

    def __init__(
        self, folder: str, *, name: str | None = None, threads: int = 0, context_window: int = 4096
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self._model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, local_files_only=True
            )
        except (OSError, ValueError) as err:
            raise GeneratorUnavailable(
                f"cannot load generator {folder}: {err}; run 'docqa models verify' or pick "
                "another with --generator"
            ) from None
        self._model.eval()
        self._prefixes: OrderedDict[tuple[int, ...], object] = OrderedDict()  # token ids -> KV cache
        self._prefix_lock = threading.Lock()
        self.name = name or Path(folder).name
        limit = getattr(self._model.config, "max_position_embeddings", context_window)
        self.context_window = min(context_window, int(limit))

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Sequence[Message], *, generation_prompt: bool = True):
        """Token ids of the chat-formatted prompt (a 1 x n tensor)."""
        return self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=generation_prompt,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]

    def stream(
        self, messages: Sequence[Message], max_new_tokens: int = 256, *, avoid: str = ""
    ) -> Iterator[str]:
        """Yield the answer's text in pieces; with ``avoid``, never that text's tokens from its
        second on at the start of the answer (see ``AvoidStart``)."""
        import torch
        from transformers import LogitsProcessorList, TextIteratorStreamer

        input_ids = self.prompt_ids(messages)
        avoided = self._tokenizer(avoid, add_special_tokens=False)["input_ids"] if avoid else []
        processors = LogitsProcessorList([_torch_avoid_start(input_ids.shape[1], avoided)] if avoided else [])
        cache = self._prefix_cache(messages, input_ids)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def _run() -> None:
            try:
                with torch.inference_mode():
                    self._model.generate(
                        input_ids=input_ids,
                        attention_mask=torch.ones_like(input_ids),
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        streamer=streamer,
                        logits_processor=processors,
                        pad_token_id=self._tokenizer.eos_token_id,
                        cache=cache,
                    )
            except BaseException as err:  # surfaced in the caller's thread below
                errors.append(err)
                streamer.end()

        worker = threading.Thread(target=_run, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if errors:
            raise GeneratorUnavailable(f"generation failed: {errors[0]}") from errors[0]

    def continuation_probability(self, messages: Sequence[Message], text: str) -> float:
        """The model's probability that its answer to ``messages`` starts with ``text``.

        One forward pass over the prompt's uncached tokens plus ``text``'s. The prompt's cache is
        kept, so a ``stream`` of the same messages right afterwards decodes at once: asking
        costs only ``text``'s few tokens. The engine asks it for the refusal sentence (rag.refusal).
        """
        import math

        import torch

        input_ids = self.prompt_ids(messages)
        cache = self._prefix_cache(messages, input_ids)
        wanted = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        if not wanted:
            return 1.0
        start = cache.get_seq_length() if cache is not None else 0
        ids = torch.cat([input_ids, torch.tensor([wanted])], dim=1)
        with torch.inference_mode():
            # Logits for the last prompt token and ``text``'s only: over the whole prompt they
            # would cost a (prompt x vocabulary) product, seconds on a CPU.
            out = self._model(
                input_ids=ids[:, start:], cache=cache, use_cache=True, logits_to_keep=len(wanted) + 1
            )
        logp = torch.log_softmax(out.logits[0, : len(wanted)].float(), dim=-1)
        total = sum(float(logp[i, token]) for i, token in enumerate(wanted))
        cache = out.cache
        cache.crop(-(len(wanted) + 1))  # back to the prompt but its last token: stream() feeds that
        with self._prefix_lock:
            self._remember(tuple(input_ids[0, :-1].tolist()), cache)
        return math.exp(total)

    def _prefix_cache(self, messages: Sequence[Message], input_ids):
        """A copy of the KV cache of the longest cached prefix of the prompt, or None.

        docqa's prompts start with the same messages (rules, worked examples, then the
        conversation so far), so the cache of ``messages[:-1]`` is made and kept
        (``PREFIX_CACHE_SIZE`` entries, least recently used dropped) and the next prompt that
        starts with it prefills only what is new: on a CPU, prefill is most of the time to first
        token. ``continuation_probability`` leaves the whole prompt's cache here too.
        """
        import copy

        import torch

        ids = input_ids[0].tolist()
        with self._prefix_lock:
            if len(messages) >= 2:
                target = self.prompt_ids(messages[:-1], generation_prompt=False)[0].tolist()
                # Used only when the template renders the leading messages as a plain prefix.
                if len(target) < len(ids) and ids[: len(target)] == target:
                    key = tuple(target)
                    if key not in self._prefixes:
                        start = self._longest_prefix(key)
                        cache = copy.deepcopy(self._prefixes[start]) if start else None
                        with torch.inference_mode():
                            rest = torch.tensor([target[len(start) :]])
                            out = self._model(input_ids=rest, cache=cache, use_cache=True, logits_to_keep=1)
                        self._remember(key, out.cache)
            best = self._longest_prefix(tuple(ids))
            if not best:
                return None
            self._prefixes.move_to_end(best)
            return copy.deepcopy(self._prefixes[best])

    def _longest_prefix(self, ids: tuple[int, ...]) -> tuple[int, ...]:
        """The longest cached key that is a proper prefix of ``ids`` (``()`` when none)."""
        known = [k for k in self._prefixes if len(k) < len(ids) and ids[: len(k)] == k]
        return max(known, key=len, default=())

    def _remember(self, key: tuple[int, ...], cache: object) -> None:
        self._prefixes[key] = cache
        self._prefixes.move_to_end(key)
        if len(self._prefixes) > PREFIX_CACHE_SIZE:
            self._prefixes.popitem(last=False)


class AvoidStart:
    """Which token to forbid so that an answer does not start with a given sentence.

    The engine's fitted refusal decision has already decided, before decoding, that the passages
    answer; a small model may still write the refusal sentence it was shown (Qwen 0.5B did for
    nearly every Spanish FAQ question, bench/README.md). While the answer so far is the
    sentence's first ``i >= 1`` tokens, token ``i`` is forbidden; the first token stays allowed
    (Spanish "No" also starts "No, ..." answers). Other wordings of a refusal remain possible.

    >>> rule = AvoidStart([5, 6, 7])
    >>> rule.forbidden([]), rule.forbidden([5]), rule.forbidden([5, 6]), rule.forbidden([4])
    (None, 6, 7, None)
    """

    def __init__(self, tokens: Sequence[int]) -> None:
        self.tokens = list(tokens)

    def forbidden(self, generated: Sequence[int]) -> int | None:
        """The token not to emit after ``generated`` (the answer's tokens so far), or None."""
        i = len(generated)
        if 1 <= i < len(self.tokens) and list(generated) == self.tokens[:i]:
            return self.tokens[i]
        return None


def _torch_avoid_start(prompt_length: int, tokens: Sequence[int]):
    """``AvoidStart`` as a transformers logits processor (the answer starts at ``prompt_length``)."""
    from transformers import LogitsProcessor

    rule = AvoidStart(tokens)

    class _Processor(LogitsProcessor):
        def __call__(self, input_ids, scores):
            token = rule.forbidden(input_ids[0, prompt_length:].tolist())
            if token is not None:
                scores[:, token] = float("-inf")
            return scores

    return _Processor()


def accepts_avoid(generator: Generator) -> bool:
    """Whether ``generator.stream`` takes ``avoid=`` (the bundled local runtimes do)."""
    import inspect

    try:
        return "avoid" in inspect.signature(generator.stream).parameters
    except (TypeError, ValueError):
        return False


def resolve_runtime(runtime: str, folder: str | Path) -> str:
    """The runtime a local generator folder runs on: ``runtime`` itself unless it is "auto", which
    means llama.cpp when llama-cpp-python is installed and the folder holds its GGUF, else torch;
    a bundled model's folder (named after it) takes its own runtime where both can run
    (``ModelSpec.runtime``: torch for the 0.5B, llama.cpp for the 1.5B).

    >>> resolve_runtime("torch", "/nowhere"), resolve_runtime("auto", "/nowhere")
    ('torch', 'torch')
    """
    if runtime != "auto":
        return runtime
    import importlib.util

    from ingest.registry import BUNDLED, GGUF_FILE

    gguf = (Path(folder) / GGUF_FILE).is_file()
    if not gguf or importlib.util.find_spec("llama_cpp") is None:
        return "torch"
    spec = BUNDLED.get(Path(folder).name)
    return spec.runtime if spec is not None and spec.role == "generator" else "llama.cpp"


def runtime_for(settings: Settings) -> str:
    """The runtime ``load_generator(settings)`` runs its generator on ("openai" for a server)."""
    if settings.generator == "openai":
        return "openai"
    folder = resolve_model(settings.generator, "generator", settings.models_dir)
    return resolve_runtime(settings.generator_runtime, folder)


def load_generator(settings: Settings) -> Generator:
    """The generator ``settings.generator`` names, ready to stream.

    "openai" gives an ``OpenAIGenerator`` for ``settings.openai_base_url``, with the key from
    the environment variable ``settings.openai_api_key_env`` names ("": no key); a bundled name
    (``docqa models list``) or a local transformers folder gives a ``TransformersGenerator``, or
    with ``settings.generator_runtime`` "llama.cpp" (or "auto" where it can run,
    ``resolve_runtime``) a ``LlamaCppGenerator`` over the folder's ``model.gguf``. Raises
    ModelNotFound (with the fetch command) or GeneratorUnavailable (also when llama.cpp is asked
    for but not installed, or the folder has no GGUF: with the fix).
    """
    if settings.generator == "openai":
        from rag.openai_generator import OpenAIGenerator

        return OpenAIGenerator(
            settings.openai_base_url,
            settings.openai_model,
            api_key=os.environ.get(settings.openai_api_key_env, "") if settings.openai_api_key_env else "",
        )
    folder = resolve_model(settings.generator, "generator", settings.models_dir)
    if not Path(folder).is_dir():
        raise GeneratorUnavailable(
            f"no generator {settings.generator!r}: give a bundled name ('docqa models list'), a "
            "transformers model folder, or 'openai'"
        )
    if resolve_runtime(settings.generator_runtime, folder) == "llama.cpp":
        from rag.llamacpp_generator import LlamaCppGenerator

        return LlamaCppGenerator(folder, threads=settings.threads)
    return TransformersGenerator(folder, threads=settings.threads)
