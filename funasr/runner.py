"""Running tasks on inputs (torch-free): the one loop (batches, per-item errors, progress), punctuation, output files.

``funasr.AutoModel`` (PyTorch) and ``funasr_onnx.AutoModel`` (onnxruntime) both build their tasks
and hand them to a ``Runner``. A task is a callable ``task(items, options) -> list[dict]`` taking
the option object of its kind (``funasr.options``).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Callable, Iterator, Optional, Sequence

from tqdm.auto import tqdm

from funasr.audio import AudioItem, TextItem, collect_sources, decode_source, open_recording, text_sources
from funasr.errors import FunASRError, OptionError
from funasr.options import DEFAULTABLE, GenerateOptions, PuncOptions
from funasr.pipeline import SAMPLES_PER_MS, Pipeline
from funasr.planner import plan_for
from funasr.writers import OutputWriter

log = logging.getLogger(__name__)


def run_batches(
    sources: Sequence[Any],
    load: Callable[[Any], Any],
    process: Callable[[list], list[dict]],
    batch_size: int,
    single: bool,
    disable_pbar: bool = False,
) -> Iterator[dict]:
    """The one loop: load ``batch_size`` sources at a time, ``process`` the loaded ones, yield one result per source.

    A source that cannot be loaded gives ``{"key", "error"}`` in its place (and a warning); for a
    ``single`` input the error is raised. Errors of ``process`` concern every item and are raised.
    """
    pbar = tqdm(total=len(sources), disable=disable_pbar or len(sources) < 2, desc="inputs", leave=False)
    try:
        for start in range(0, len(sources), batch_size):
            chunk = sources[start : start + batch_size]
            loaded: list[Any] = []
            for source in chunk:
                try:
                    if getattr(source, "error", None) is not None:
                        raise source.error
                    loaded.append(load(source))
                except FunASRError as e:
                    if single:
                        raise
                    loaded.append(e)
            good = [item for item in loaded if not isinstance(item, FunASRError)]
            out = iter(process(good) if good else [])
            for source, item in zip(chunk, loaded):
                if isinstance(item, FunASRError):
                    log.warning("skipping %s: %s", source.key, item)
                    yield {"key": source.key, "error": str(item)}
                else:
                    yield next(out)
            pbar.update(len(chunk))
    finally:
        pbar.close()


class Runner:
    """FunASR's ``generate()`` over a main ``task`` (whose ``kind`` is "vad", "asr" or "punc") and optional VAD / punctuation tasks."""

    def __init__(self, task: Any, kind: str, vad_task: Any = None, punc_task: Any = None,
                 defaults: Optional[dict] = None) -> None:
        self.task, self.kind, self.vad_task, self.punc_task = task, kind, vad_task, punc_task
        self.pipeline = Pipeline(vad_task, task, punc_task) if vad_task is not None and kind == "asr" else None
        self.defaults = {k: v for k, v in (defaults or {}).items() if k in DEFAULTABLE and v is not None}
        self.options(self.defaults)  # bad constructor values fail now, not at the first call

    def options(self, kwargs: dict) -> GenerateOptions:
        """``generate()`` arguments (over the constructor's defaults), checked."""
        return GenerateOptions.parse({**self.defaults, **kwargs}, self.kind, self.vad_task is not None, self.streaming)

    @property
    def streaming(self) -> bool:
        """Whether the main task decodes streams (``cache=`` holds one between calls)."""
        return bool(getattr(self.task, "streaming", False))

    def sources(self, input: Any) -> tuple[list, bool]:
        """The inputs of ``input`` with unique keys; the flag says whether it was a single input."""
        return text_sources(input) if self.kind == "punc" else collect_sources(input)

    def generate(self, input: Any, **kwargs: Any) -> list[dict]:
        """Run the model (and the VAD / punctuation chain when given) on ``input``; one dict per input."""
        opts = self.options(kwargs)
        sources, single = self.sources(input)
        writer = OutputWriter(opts.run.output_dir, opts.run.formats) if opts.run.output_dir else nullcontext()
        with writer:
            results = []
            for result in self.results(sources, single, opts):
                results.append(result)
                if opts.run.output_dir:
                    writer.write(result)
        return results

    def results(self, sources: list, single: bool, opts: GenerateOptions) -> Iterator[dict]:
        """One result per source, in order, as they are ready."""
        fs = opts.run.fs
        cache = {"vad": opts.vad.cache, "punc": opts.punc.cache}.get(self.kind, opts.stream.cache)
        if cache is not None and len(sources) != 1:
            raise OptionError(
                f"cache= holds one {self.kind.upper()} stream, but the input has {len(sources)} items; "
                "call generate() once per stream (one input, one cache dict each)"
            )
        if self.kind == "asr":
            self.task.hotword_bias(opts.asr.hotword)  # a hotword file or URL is read (and encoded, cached) before any audio
            self.task.lm_fusion(opts.asr)  # so is an LM file
        if self.pipeline is not None:
            return run_batches(sources, lambda s: open_recording(s, fs), lambda recs: [self.pipeline.transcribe(recs[0], opts)],
                               1, single, opts.run.disable_pbar)
        if self.kind == "punc":
            return run_batches(sources, lambda item: item, lambda items: self.task(items, opts.punc),
                               opts.run.batch_size, single, opts.run.disable_pbar)
        empty_ok = self.streaming and cache is not None  # a stream's last call may bring no audio
        return run_batches(sources, lambda s: AudioItem(s.key, decode_source(s, fs, empty_ok), source=s.value),
                           lambda items: self._recognize(items, opts), opts.run.batch_size, single, opts.run.disable_pbar)

    def _recognize(self, items: list[AudioItem], opts: GenerateOptions) -> list[dict]:
        """One batch through the main task, then punctuation."""
        if self.kind == "vad":
            return self.task(items, opts.vad)
        results = self.task(items, opts.stream) if self.streaming else self.recognize_planned(items, opts)
        return self.punctuate(results, opts.punc) if self.punc_task is not None else results

    def recognize_planned(self, items: list[AudioItem], opts: GenerateOptions) -> list[dict]:
        """``batch_size`` inputs through the ASR task in the batches planned for this CPU (one batch on a GPU)."""
        results: list[dict] = [{}] * len(items)
        for batch in plan_for(self.task, [len(item.waveform) // SAMPLES_PER_MS for item in items]):
            for i, result in zip(batch, self.task([items[i] for i in batch], opts.asr)):
                results[i] = result
        return results

    def punctuate(self, results: list[dict], options: PuncOptions) -> list[dict]:
        """Replace each result's text by its punctuated text (``raw_text`` kept on request)."""
        todo = [r for r in results if "error" not in r and r.get("text", "").strip()]
        punc = self.punc_task([TextItem(r["key"], r["text"]) for r in todo], options) if todo else []
        for r, p in zip(todo, punc):
            if options.return_raw_text:
                r["raw_text"] = r["text"]
            r["text"] = p["text"]
        return results
