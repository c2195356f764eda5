"""VAD -> ASR -> punctuation over long audio: batching by seconds, merging, sentences (torch-free)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import numpy as np
from tqdm.auto import tqdm

from funasr.audio import AudioItem, Recording, TextItem
from funasr.options import GenerateOptions, VADCallOptions
from funasr.planner import concurrent_runs, plan_for
from funasr.sentences import join_vad_texts, punctuate_segments, sentences_from_punctuation, sentences_from_segments

if TYPE_CHECKING:
    from funasr.tasks.vad import VADTask

Task = Callable[..., list]  # task(items, options) -> list[dict]
SAMPLES_PER_MS = 16  # at 16 kHz
VAD_BLOCK = 16000 * 60  # samples of a file on disk read at a time for VAD (1 minute)


def merge_segments(segments: list[list[int]], max_ms: float) -> list[list[int]]:
    """``merge_vad``: regroup segment boundaries, gaps included, into pieces shorter than ``max_ms``."""
    bounds = sorted({t for seg in segments for t in seg})
    if not bounds:
        return []
    out, begin = [], 0
    for t, nxt in zip(bounds[:-1], bounds[1:]):
        if nxt - begin >= max_ms:
            out.append([begin, t])
            begin = t
    out.append([begin, bounds[-1]])
    return out


class FbankFrames:
    """The VAD's fbank frames of one recording, in the blocks it computed them in; ASR takes its segments' frames here."""

    def __init__(self, blocks: list[np.ndarray], length: int, shift: int, first: int = 0) -> None:
        self.blocks = [b for b in blocks if len(b)]
        self.starts = first + np.cumsum([0] + [len(b) for b in self.blocks])  # frame index of each block's first frame
        self.length, self.shift = length, shift  # frame length and shift in samples

    def segment(self, start: int, stop: int) -> Optional[np.ndarray]:
        """The frames of samples ``start:stop`` as that piece's own fbank would give them, or None where they differ.

        They are the same frames when the piece starts on a frame boundary and holds one whole frame or more
        (shorter pieces get a shrunk frame).
        """
        if start % self.shift or stop - start < self.length:
            return None
        first = start // self.shift
        last = first + 1 + (stop - start - self.length) // self.shift
        if first < self.starts[0] or last > self.starts[-1]:
            return None
        i, j = np.searchsorted(self.starts, first, "right") - 1, np.searchsorted(self.starts, last, "left")
        parts = [b[max(first - s, 0) : last - s] for b, s in zip(self.blocks[i:j], self.starts[i:j])]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class Pipeline:
    """Runs VAD, then ASR on the speech segments, then punctuation, on one recording.

    When the VAD and ASR frontends compute the same fbank (same rate, window, mel bins, frame length and
    shift; neither dithers at inference), the fbank is computed once: the VAD keeps its frames and ASR
    stacks and normalises each segment's frames itself (identical features, so identical results).
    """

    def __init__(self, vad: VADTask, asr: Task, punc: Optional[Task] = None) -> None:
        self.vad, self.asr, self.punc = vad, asr, punc

    def shares_fbank(self) -> bool:
        """Whether ASR takes the VAD's fbank frames (equal fbank settings, an ASR task that reads whole features)."""
        settings = [getattr(getattr(task, "frontend", None), "fbank_settings", None) for task in (self.vad, self.asr)]
        return getattr(self.asr, "takes_fbank", False) and all(settings) and settings[0]() == settings[1]()

    def transcribe(self, item: Recording, opts: GenerateOptions) -> dict:
        """One recording through the whole chain."""
        conf = opts.pipeline
        kept: Optional[list[np.ndarray]] = [] if self.shares_fbank() else None
        if item.waveform is None and not conf.merge_vad:
            segments, seg_results = self._segments_and_text(item, opts, kept)
        else:
            segments = self._segments(item, opts.vad, kept)
            if conf.merge_vad:
                segments = merge_segments(segments, 1000 * conf.merge_length_s)
            frames = FbankFrames(kept, *self.vad.frontend.frame_samples) if kept is not None else None
            seg_results = self._recognize(item, segments, opts, frames)
            del kept, frames
        texts = [r.get("text", "") for r in seg_results]
        stamps = [[[s + int(seg[0]), e + int(seg[0])] for s, e in r.get("timestamp", [])] for r, seg in zip(seg_results, segments)]
        has_stamps = self.asr.gives_timestamps(opts.asr)
        result: dict = {"key": item.key, "text": " ".join(t for t in texts if t.strip())}
        if has_stamps:
            result["timestamp"] = [ts for seg in stamps for ts in seg]
        punc_array = None
        if self.punc is not None:
            punc_input = join_vad_texts(texts)
            if opts.punc.return_raw_text:
                result["raw_text"] = result["text"]
            if punc_input:
                punc = self.punc([TextItem(item.key, punc_input)], opts.punc)[0]
                result["text"], punc_array = punc["text"], punc.get("punc_array")
        if conf.sentence_timestamp:
            units = [u for t in texts for u in t.split()]
            aligned = punc_array is not None and has_stamps and len(punc_array) == len(result["timestamp"]) == len(units)
            if aligned:
                result["sentence_info"] = sentences_from_punctuation(list(punc_array), result["timestamp"], units,
                                                                     opts.punc.return_raw_text)
            else:  # one sentence per VAD segment, punctuated when the marks fit its units
                marked = punctuate_segments(texts, result["text"]) if self.punc is not None else None
                result["sentence_info"] = sentences_from_segments(segments, marked or texts, stamps if has_stamps else None)
        return result

    def _segments(self, item: Recording, options: VADCallOptions, kept: Optional[list[np.ndarray]] = None) -> list[list[int]]:
        """VAD over the whole recording (its fbank frames appended to ``kept`` when a list); a file on disk is fed
        in blocks through one VAD stream (same segments)."""
        if item.waveform is not None:
            streaming, final = self.vad.call_mode(AudioItem(item.key, item.waveform), options)
            stream = self.vad.call_stream(options, streaming)
            stream.features.kept = kept
            stream.accept_waveform(item.waveform)
            if final:
                stream.input_finished()
            return self.vad.decode_stream(stream)
        return [seg for done in self._vad_blocks(item, options, kept) for seg in done]

    def _vad_blocks(self, item: Recording, options: VADCallOptions, kept: Optional[list[np.ndarray]]) -> Iterator[list[list[int]]]:
        """A file on disk fed to one VAD stream a block at a time: the segments each block finishes."""
        stream = self.vad.call_stream(options, streaming=False)
        stream.features.kept = kept
        for block, last in item.blocks(VAD_BLOCK):
            stream.accept_waveform(block)
            if last:
                stream.input_finished()
            yield self.vad.decode_stream(stream)

    def _segments_and_text(
        self, item: Recording, opts: GenerateOptions, kept: Optional[list[np.ndarray]]
    ) -> tuple[list[list[int]], list[dict]]:
        """A file on disk: VAD block by block, each block's finished segments recognised before the next block is read.

        Memory stays that of a block whatever the length: the VAD's fbank frames (``kept``) are let go up to
        the end of the last finished segment. Same segments as over the whole file, and ASR results do not
        depend on how segments are batched, so the results are those of the whole file at once.
        """
        length, shift = self.vad.frontend.frame_samples
        first = 0  # frame index of kept[0]
        segments: list[list[int]] = []
        results: list[dict] = []
        for done in self._vad_blocks(item, opts.vad, kept):
            if not done:
                continue
            frames = FbankFrames(kept, length, shift, first) if kept is not None else None
            results += self._recognize(item, done, opts, frames)
            segments += done
            if kept is not None:  # later segments start at or after this end: earlier frames are never read again
                end = int(done[-1][1] * SAMPLES_PER_MS) // shift
                while kept and first + len(kept[0]) <= end:
                    first += len(kept.pop(0))
        return segments, results

    def _recognize(self, item: Recording, segments: list[list[int]], opts: GenerateOptions,
                   frames: Optional[FbankFrames] = None) -> list[dict]:
        """ASR on every segment, batched by length (from the VAD's ``frames`` where they serve); results in segment order."""
        durations = [int(e) - int(s) for s, e in segments]
        budget = max(1000 * opts.pipeline.batch_size_s, min(durations, default=1), 1)
        streaming = getattr(self.asr, "streaming", False)
        out: list[dict] = [{}] * len(segments)
        batches = plan_for(self.asr, durations, budget, 1000 * opts.pipeline.batch_size_threshold_s)
        show = not opts.run.disable_pbar and len(batches) > 1

        def run(batch: list[int]) -> list[tuple[int, dict]]:
            spans = {i: (int(segments[i][0] * SAMPLES_PER_MS), min(int(segments[i][1] * SAMPLES_PER_MS), item.length))
                     for i in batch}
            fbanks = {i: frames.segment(*spans[i]) if frames is not None else None for i in batch}
            pieces = {i: item.read(*spans[i]) if fbanks[i] is None else None for i in batch}
            batch = [i for i in batch if fbanks[i] is not None or len(pieces[i])]  # past the end of the audio: nothing
            seg_items = [AudioItem(item.key, None if fbanks[i] is not None else np.ascontiguousarray(pieces[i]), fbank=fbanks[i])
                         for i in batch]
            return list(zip(batch, self.asr(seg_items, opts.stream if streaming else opts.asr) if seg_items else []))

        workers = concurrent_runs(self.asr) if all(len(b) == 1 for b in batches) else 1
        with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
            done = pool.map(run, batches) if pool is not None else map(run, batches)
            for pairs in tqdm(done, total=len(batches), desc=f"{item.key} segments", disable=not show, leave=False):
                for i, res in pairs:
                    out[i] = res
        return out
