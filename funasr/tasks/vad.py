"""VAD task: waveforms in, FunASR's ``{"key", "value": [[beg_ms, end_ms], ...]}`` out (offline and streaming).

The network is a VAD engine (``funasr.engines.VADNet``, PyTorch or onnxruntime). All state of a
stream lives in a ``funasr.streaming.VADStream`` (``create_stream`` / ``decode_stream``);
FunASR's ``cache={}`` holds one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from funasr.audio import AudioItem
from funasr.engines import VADNet
from funasr.errors import OptionError
from funasr.frontend import WavFrontendOnline
from funasr.models.fsmn_vad.segmenter import ChunkedSegmenter, VADOptions
from funasr.options import VADCallOptions
from funasr.streaming import VADStream, stream_in_cache

STREAMING_BELOW_MS = 15000


class VADTask:
    """Runs FSMN-VAD over whole recordings (in 60 s chunks) or over a stream of chunks (``cache=``)."""

    kind: ClassVar[str] = "vad"

    def __init__(self, net: VADNet, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.net = net
        self.cfg = cfg
        # Chunked processing needs the online frontend; a config naming WavFrontend gets its online twin.
        self.frontend = frontend if hasattr(frontend, "accept") else WavFrontendOnline(**(cfg.get("frontend_conf") or {}))
        self.options = VADOptions.from_config(cfg)

    def __call__(self, items: list[AudioItem], options: VADCallOptions = VADCallOptions()) -> list[dict[str, Any]]:
        """Segments of each item; with ``options.cache`` (one item per call) the stream continues across calls."""
        if options.cache is not None and len(items) != 1:
            raise OptionError(f"streaming VAD with cache= takes one input per call, got {len(items)}; call once per chunk")
        results = []
        for item in items:
            streaming, final = self.call_mode(item, options)
            cache = options.cache
            if cache is None:
                stream = self.call_stream(options, streaming)
            else:  # a new stream keeps the options of its first call; each call's audio is cut by its chunk_size
                stream = stream_in_cache(cache, VADStream, lambda: self.call_stream(options, streaming))
                stream.chunk_ms = int(options.chunk_size)
            stream.accept_waveform(item.waveform)
            if final:
                stream.input_finished()
            results.append({"key": item.key, "value": self.decode_stream(stream)})
            if final and cache is not None:
                cache.clear()  # a finished stream leaves a clean cache for the next one
        return results

    @staticmethod
    def call_mode(item: AudioItem, options: VADCallOptions) -> tuple[bool, bool]:
        """``(streaming, final)`` for one item of a call: events or whole segments, and whether its input ends here."""
        if isinstance(item.source, (str, Path)):  # a file or URL is a whole recording (as in the reference)
            return False, True
        streaming = options.is_streaming_input if options.is_streaming_input is not None else options.chunk_size < STREAMING_BELOW_MS
        return streaming, options.is_final if options.is_final is not None else not streaming

    def create_stream(self, chunk_ms: int = 200, streaming: bool = True, options: Optional[VADOptions] = None) -> VADStream:
        """A new stream cut into ``chunk_ms`` chunks: streaming events, or whole segments when ``streaming`` is False."""
        opts = options or self.options
        return VADStream(opts, self.frontend.create_stream(), ChunkedSegmenter(opts, streaming), chunk_ms=chunk_ms)

    def call_stream(self, options: VADCallOptions, streaming: bool) -> VADStream:
        """A new stream cut by ``options.chunk_size``, with the call's segmenter settings."""
        return self.create_stream(int(options.chunk_size), streaming, self.options.for_call(**options.segmenter_overrides()))

    def decode_stream(self, stream: VADStream) -> list[list[int]]:
        """Decode the stream's whole pending chunks (all of it once input is finished): the new segments/events."""
        if stream.closed:
            return []
        pieces = stream.take_pending(int(stream.chunk_ms * self.frontend.fs / 1000))
        out: list[list[int]] = []
        for i, piece in enumerate(pieces):
            last = stream.finished and i == len(pieces) - 1
            stream.segmenter.begin_chunk(stream.chunk_ms)
            feats = self.frontend.accept(piece, stream.features, last)
            p_sil, stream.net_cache = self.net.silence_prob(feats, stream.net_cache, stream.options.sil_pdf_ids)
            out.extend(stream.segmenter.accept(piece, p_sil, last))
        stream.closed = stream.finished
        return out

    def decode_streams(self, streams: list[VADStream]) -> list[list[list[int]]]:
        """``decode_stream`` of each stream, in order."""
        return [self.decode_stream(s) for s in streams]
