"""Running tasks on inputs (torch-free): batches, per-item errors, punctuation, the VAD chain, output files.

``funasr.AutoModel`` (PyTorch) and ``funasr_onnx.AutoModel`` (onnxruntime) both build their tasks
and hand them to a ``Runner``. A task is a callable ``task(items, **kwargs) -> list[dict]``.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator, Optional

from tqdm.auto import tqdm

from funasr.audio import TextItem, collect_sources, load_item, text_sources
from funasr.pipeline import Pipeline
from funasr.writers import write_results

log = logging.getLogger(__name__)


class Runner:
    """FunASR's ``generate()`` over a main task (``task`` = "vad", "asr" or "punc": what it does) and optional VAD / punctuation."""

    def __init__(self, model: Any, task: str, vad_model: Any = None, punc_model: Any = None, batch_size: int = 1,
                 disable_pbar: bool = False, kwargs: Optional[dict] = None) -> None:
        self.model, self.task, self.vad_model, self.punc_model = model, task, vad_model, punc_model
        self.batch_size = max(1, int(batch_size))
        self.disable_pbar = disable_pbar
        self.kwargs = kwargs or {}

    def generate(self, input: Any, output_dir: Optional[str] = None, **kwargs: Any) -> list[dict]:
        """Run the model (and the VAD / punctuation chain when given) on ``input``; one dict per input."""
        results = self._generate(input, **kwargs)
        output_dir = output_dir or self.kwargs.get("output_dir")
        if output_dir:
            write_results(results, output_dir, kwargs.get("formats", ()))
        return results

    def _generate(self, input: Any, **kwargs: Any) -> list[dict]:
        if self.vad_model is not None and self.task == "asr":
            pipeline = Pipeline(self.vad_model, self.model, self.punc_model,
                                self.kwargs.get("merge_length_s", 15), self.disable_pbar)
            return pipeline(input, **kwargs)
        if self.task == "punc":
            sources, single = text_sources(input)
        else:
            sources, single = collect_sources(input)
        results = []
        for batch in self._batches(sources, kwargs.pop("batch_size", self.batch_size), kwargs.get("fs", 16000)):
            results.extend(self._run_batch(batch, single, **kwargs))
        return results

    def _batches(self, sources: list, batch_size: int, fs: int) -> Iterator[list]:
        """Load inputs lazily, ``batch_size`` at a time, so a long list never sits in memory at once."""
        pbar = tqdm(total=len(sources), disable=self.disable_pbar or len(sources) < 2, desc="inputs", leave=False)
        for i in range(0, len(sources), max(1, int(batch_size))):
            chunk = sources[i : i + batch_size]
            yield [s if isinstance(s, TextItem) else load_item(s, fs) for s in chunk]
            pbar.update(len(chunk))
        pbar.close()

    def _run_batch(self, batch: list, single: bool, **kwargs: Any) -> list[dict]:
        """One batch through the task; bad items keep their place as ``{"key", "error"}``."""
        bad = [item for item in batch if getattr(item, "error", None) is not None]
        if bad and single:
            raise bad[0].error
        good = [item for item in batch if getattr(item, "error", None) is None]
        out = iter(self.model(good, **kwargs) if good else [])
        results = []
        for item in batch:
            if getattr(item, "error", None) is not None:
                log.warning("skipping %s: %s", item.key, item.error)
                results.append({"key": item.key, "error": str(item.error)})
            else:
                results.append(next(out))
        if self.punc_model is not None and self.task == "asr":
            results = self.punctuate(results, **kwargs)
        return results

    def punctuate(self, results: list[dict], **kwargs: Any) -> list[dict]:
        """Replace each result's text by its punctuated text (``raw_text`` kept on request)."""
        todo = [r for r in results if "error" not in r and r.get("text", "").strip()]
        punc = self.punc_model([TextItem(r["key"], r["text"]) for r in todo], **kwargs) if todo else []
        for r, p in zip(todo, punc):
            if kwargs.get("return_raw_text"):
                r["raw_text"] = r["text"]
            r["text"] = p["text"]
        return results
