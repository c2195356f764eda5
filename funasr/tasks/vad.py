"""VAD task: waveforms in, FunASR's ``{"key", "value": [[beg_ms, end_ms], ...]}`` out (offline and streaming).

The network is a VAD engine (``funasr.engines.VADNet``, PyTorch or onnxruntime). All state of a
stream lives in a ``funasr.streaming.VADStream`` (``create_stream`` / ``decode_stream``);
FunASR's ``cache={}`` holds one.
"""
from __future__ import annotations

from collections import defaultdict
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
        return self.decode_streams([stream])[0]

    def decode_streams(self, streams: list[VADStream]) -> list[list[list[int]]]:
        """``decode_stream`` of each stream: chunk by chunk, the streams' chunks of equal length through the network in
        one batch."""
        pieces = [[] if s.closed else s.take_pending(int(s.chunk_ms * self.frontend.fs / 1000)) for s in streams]
        out: list[list[list[int]]] = [[] for _ in streams]
        for r in range(max((len(p) for p in pieces), default=0)):
            active = [i for i, p in enumerate(pieces) if r < len(p)]
            lasts = {i: streams[i].finished and r == len(pieces[i]) - 1 for i in active}
            for i in active:
                streams[i].segmenter.begin_chunk(streams[i].chunk_ms)
            feats = dict(zip(active, self.frontend.accept_many([pieces[i][r] for i in active], [streams[i].features for i in active],
                                                                [lasts[i] for i in active])))
            groups = defaultdict(list)  # chunks of equal frame counts and settings: one network call
            for i in active:
                groups[len(feats[i]), tuple(streams[i].options.sil_pdf_ids)].append(i)
            for (_, ids), members in groups.items():
                probs, caches = self.net.silence_probs([feats[i] for i in members], [streams[i].net_cache for i in members], ids)
                for i, p_sil, cache in zip(members, probs, caches):
                    streams[i].net_cache = cache
                    out[i].extend(streams[i].segmenter.accept(pieces[i][r], p_sil, lasts[i]))
        for s in streams:
            s.closed = s.closed or s.finished
        return out
