"""ASRTask: waveforms -> frontend -> ASR engine (``funasr.engines.ASRNet``) -> FunASR result dicts.

One dict per item, in FunASR's format: ``{"key", "text"}``, plus ``"timestamp"``
(``[[start_ms, end_ms], ...]``, one per text unit) for models that always give timestamps
(BiCif, SeACo) or when ``pred_timestamp`` / ``output_timestamp`` is set.

The task never touches torch or onnxruntime: the engine (PyTorch or onnxruntime) does.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from funasr.audio import AudioItem
from funasr.errors import OptionError
from funasr.hotword import check_hotword, hotword_ids, read_hotwords
from funasr.hub import is_url
from funasr.lm import LMCache, LMFusion, kenlm_installed, lm_words
from funasr.options import LM_WEIGHT, ASROptions, StreamASROptions
from funasr.engines import ASRNet, Recognition
from funasr.models.paraformer.cif import ts_prediction_lfr6_standard
from funasr.models.paraformer.decoding import special_ids
from funasr.models.paraformer_streaming.chunks import SAMPLES_PER_FRAME, ChunkSettings, fire_chunk, mask_alphas, position_encoding
from funasr.postprocess import sentence_postprocess
from funasr.streaming import CACHE_KEY, ParaformerStream, stream_in_cache

log = logging.getLogger(__name__)

HOTWORD_CACHE_SIZE = 8
URL_HOTWORD_TTL_S = 300.0  # a hotword URL is read again after this long (its list may change)


class ASRTask:
    """Runs an ASR model over a batch of audio items."""

    kind: ClassVar[str] = "asr"
    takes_fbank: ClassVar[bool] = True  # items may carry fbank frames instead of audio (AudioItem.fbank)

    def __init__(self, net: ASRNet, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.net = net
        self.frontend = frontend
        self.tokenizer = tokenizer
        self.cfg = cfg
        self._hotwords: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._lms = LMCache()
        self._lm_warned = False
        self._hotword_warned = False

    @property
    def always_timestamps(self) -> bool:
        """Whether every result carries timestamps (BiCif, SeACo)."""
        return bool(self.net.always_timestamps)

    @property
    def takes_hotwords(self) -> bool:
        """Whether the model can be biased with hotwords (SeACo, Contextual)."""
        return bool(self.net.takes_hotwords)

    @property
    def always_bias(self) -> bool:
        """Whether the model biases with the sentinel alone when given no hotwords (Contextual)."""
        return bool(self.net.always_bias)

    def gives_timestamps(self, options: ASROptions) -> bool:
        """Whether results carry ``timestamp`` under ``options``."""
        return bool(options.timestamps and self.net.timestamps_on_request) or self.always_timestamps

    def __call__(self, items: list[AudioItem], options: ASROptions = ASROptions()) -> list[dict]:
        """Recognise ``items`` as one batch (the caller sizes batches); results in item order."""
        if not items:
            return []
        return self.recognize(items, self.hotword_bias(options.hotword), options)

    def recognize(self, items: list[AudioItem], bias: Any, options: ASROptions) -> list[dict]:
        """One batch: features, model, text (and timestamps). Items with no frames give empty text."""
        with_ts = self.gives_timestamps(options)
        results = [self.empty(item.key, with_ts) for item in items]
        per_item = [self.frontend.extract(item.waveform) if item.fbank is None else self.frontend.from_fbank(item.fbank)
                    for item in items]
        live = [i for i, f in enumerate(per_item) if len(f)]
        if not live:
            return results
        lens = np.array([len(per_item[i]) for i in live], dtype=np.int64)
        feats = np.zeros((len(live), int(lens.max()), per_item[live[0]].shape[1]), dtype=np.float32)
        for j, i in enumerate(live):
            feats[j, : lens[j]] = per_item[i]
        rec = self.decode(feats, lens, bias, options.timestamps,
                          {"clas_scale": options.clas_scale, "search": options.search, "lm": self.lm_fusion(options)})
        for j, i in enumerate(live):
            results[i] = self.result(items[i].key, rec, j, with_ts)
        return results

    def decode(self, feats: np.ndarray, lens: np.ndarray, bias: Any, timestamps: bool, options: dict[str, Any]) -> Recognition:
        """The engine: padded features (B, T, D) and lengths (B,) -> greedy tokens (and timestamp inputs)."""
        return self.net.recognize(feats, lens, bias=bias, timestamps=timestamps, **options)

    @staticmethod
    def empty(key: str, with_ts: bool) -> dict:
        """The result of an utterance that decodes to no tokens."""
        return {"key": key, "text": "", "timestamp": []} if with_ts else {"key": key, "text": ""}

    def result(self, key: str, rec: Recognition, j: int, with_ts: bool) -> dict:
        """Result dict of batch item ``j``."""
        tokens = self.tokenizer.ids2tokens(rec.token_ids[j])
        if not with_ts or rec.stamp_weights is None:
            return {"key": key, "text": sentence_postprocess(tokens)[0]}
        stamps = ts_prediction_lfr6_standard(rec.stamp_weights[j], rec.stamp_fires[j], tokens, upsample_rate=rec.upsample_rate)
        text, stamps, _ = sentence_postprocess(tokens, stamps)
        return {"key": key, "text": text, "timestamp": stamps}

    def lm_fusion(self, options: ASROptions) -> Optional[LMFusion]:
        """The n-gram LM for the engine's search (loaded once per file): ``lm_file``, else the one in the model folder
        (``lm.arpa.gz`` and the like, weight ``ngram_lm.lm_weight``, beam ``ngram_lm.beam_size``); None: greedy decoding
        (also with ``lm_weight=0``)."""
        declared = self.cfg.get("ngram_lm") or {}
        path = options.lm_file or declared.get("lm_file")
        weight = options.lm_weight if options.lm_weight is not None else float(declared.get("lm_weight", LM_WEIGHT))
        if path is None or weight == 0:
            return None
        if not getattr(self.net, "takes_lm", False):
            if options.lm_file is None:
                return None
            raise OptionError(f"lm_file={str(options.lm_file)!r}: {self.cfg.get('model')} has no LM search here; an n-gram LM "
                              "works with the offline Paraformer models (Paraformer, BiCif, SeACo, Contextual)")
        if options.lm_file is None and not kenlm_installed():
            if not self._lm_warned:
                self._lm_warned = True
                log.warning("%s holds an n-gram LM (%s) that needs the kenlm package: pip install 'funasr[lm]'; decoding "
                            "greedily without it", self.cfg.get("model_dir"), Path(path).name)
            return None
        beam = options.search.beam(declared.get("beam_size"))
        return LMFusion(self._lms.get(path), weight, beam, self._lm_words)

    @cached_property
    def _lm_words(self) -> tuple[Optional[str], ...]:
        """Each token id's LM word (None for blank, <s>, </s>), worked out once."""
        return lm_words(self.tokenizer.token_list, frozenset(special_ids(self.cfg)))

    def hotword_bias(self, hotword: Any) -> Any:
        """Encoded hotwords for the model (None: no biasing), cached per hotword argument."""
        if not self.takes_hotwords:
            if hotword not in (None, "", []) and not self._hotword_warned:
                self._hotword_warned = True
                log.warning("%s takes no hotwords (SeACo and contextual Paraformers do); ignoring hotword=%.80r",
                            self.cfg.get("model"), hotword)
            return None
        if hotword is None and not self.always_bias:
            return None
        check_hotword(hotword)
        key = _cache_key(hotword)
        with self._lock:
            if key in self._hotwords:
                self._hotwords.move_to_end(key)
                return self._hotwords[key]
        words = read_hotwords(hotword)
        _, sos, _ = special_ids(self.cfg)
        bias = None
        if words:
            bias = self.net.encode_hotwords(hotword_ids(words, self.tokenizer, sos=sos))
            log.info("hotwords: %s", words)
        elif self.always_bias:
            bias = self.net.encode_hotwords([[sos]])
        with self._lock:
            self._hotwords[key] = bias
            if len(self._hotwords) > HOTWORD_CACHE_SIZE:
                self._hotwords.popitem(last=False)
        return bias


def _cache_key(hotword: Any) -> tuple:
    """Cache key: the argument itself, plus the file's modification time for a local file, or the current
    ``URL_HOTWORD_TTL_S`` period for a URL."""
    if isinstance(hotword, str):
        if is_url(hotword):
            return (hotword, int(time.monotonic() // URL_HOTWORD_TTL_S))
        mtime = os.path.getmtime(hotword) if hotword.endswith(".txt") and os.path.isfile(hotword) else None
        return (hotword, mtime)
    return ("list", None if hotword is None else tuple(hotword))


class StreamingASRTask(ASRTask):
    """Streaming ASR (ParaformerStreaming): streams of audio decoded chunk by chunk, many streams in one batch.

    ``stream = task.create_stream(...)``, ``stream.accept_waveform(samples)``, ``stream.input_finished()``,
    and ``task.decode_streams([...])`` gives each stream's new text: ``{"key", "text"}`` with the
    tokens fired since its last decode. Chunks of different streams, each at its own position, go
    through the network together (round by round when a stream has several chunks waiting), with
    the results of decoding each alone. FunASR's ``generate(input=chunk, cache={}, is_final=...)``
    is an adapter over one stream kept in ``cache``.
    """

    streaming: ClassVar[bool] = True
    takes_fbank: ClassVar[bool] = False

    def __init__(self, net: Any, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        super().__init__(net, frontend, tokenizer, cfg)
        enc_conf = cfg.get("encoder_conf") or {}
        self.width = int(enc_conf.get("output_size", 256))
        self.scale = np.float32(self.width**0.5)  # the encoder's input scaling, √d
        self.tail_threshold = float((cfg.get("predictor_conf") or {}).get("tail_threshold", 0.0))
        self.drop = frozenset(special_ids(cfg))

    def create_stream(
        self,
        chunk_size: Sequence[int] = (0, 10, 5),
        encoder_chunk_look_back: int = 4,
        decoder_chunk_look_back: int = 1,
        key: str = "stream",
    ) -> ParaformerStream:
        """A new stream: ``chunk_size`` [left, new, look-ahead] frames of 60 ms, look-back in chunks (-1: all)."""
        opts = StreamASROptions.parse(
            {"chunk_size": chunk_size, "encoder_chunk_look_back": encoder_chunk_look_back,
             "decoder_chunk_look_back": decoder_chunk_look_back}
        )
        settings = ChunkSettings(opts.chunk_size, opts.encoder_chunk_look_back, opts.decoder_chunk_look_back)
        return ParaformerStream(
            settings=settings,
            features=self.frontend.create_stream(),
            overlap=np.zeros((settings.overlap, self.frontend.output_size()), dtype=np.float32),
            cif_hidden=np.zeros(self.width, dtype=np.float32),
            net_cache=self.net.new_cache(),
            key=key,
        )

    def decode_stream(self, stream: ParaformerStream) -> dict[str, Any]:
        """``decode_streams`` of one stream."""
        return self.decode_streams([stream])[0]

    def decode_streams(self, streams: list[ParaformerStream]) -> list[dict[str, Any]]:
        """Decode every whole chunk waiting in each stream (all the rest once its input is finished): the new text of each.

        An item that is not a ``ParaformerStream`` gets ``{"key", "error"}`` in its place; the others are decoded.
        """
        if len({id(s) for s in streams}) != len(streams):
            raise OptionError("decode_streams got the same stream more than once; pass each stream once per call")
        good = [s for s in streams if isinstance(s, ParaformerStream)]
        if len(good) < len(streams):
            out = iter(self.decode_streams(good))
            return [next(out) if isinstance(s, ParaformerStream) else
                    {"key": f"input_{i}", "error": f"decode_streams takes streams from create_stream(), got {type(s).__name__}"}
                    for i, s in enumerate(streams)]
        pieces = [[] if s.closed else s.take_pending(s.settings.stride) for s in streams]
        ids: list[list[int]] = [[] for _ in streams]
        for r in range(max((len(p) for p in pieces), default=0)):
            active = [i for i, p in enumerate(pieces) if r < len(p)]
            finals = [streams[i].finished and r == len(pieces[i]) - 1 for i in active]
            new = self.step([streams[i] for i in active], [pieces[i][r] for i in active], finals)
            for i, got in zip(active, new):
                ids[i].extend(got)
        for s in streams:
            s.closed = s.closed or s.finished
        return [{"key": s.key, "text": sentence_postprocess(self.tokenizer.ids2tokens(t))[0]} for s, t in zip(streams, ids)]

    def windows(self, streams: list[ParaformerStream], pieces: list[np.ndarray], finals: list[bool]) -> list[np.ndarray]:
        """The encoder input of each stream's next chunk: the overlap frames, then the new frames scaled and
        position-encoded (the fbank of all the chunks in one pass)."""
        # too little audio for a frame at the end: the overlap alone, as the reference
        short = [f and len(p) < SAMPLES_PER_FRAME for p, f in zip(pieces, finals)]
        framed = [i for i, s in enumerate(short) if not s]
        feats = dict(zip(framed, self.frontend.accept_many([pieces[i] for i in framed], [streams[i].features for i in framed],
                                                           [finals[i] for i in framed])))
        out = []
        for i, stream in enumerate(streams):
            if short[i]:
                out.append(stream.overlap * self.scale)
                continue
            x = feats[i] * self.scale + position_encoding(stream.frames, len(feats[i]), feats[i].shape[1])
            stream.frames += len(feats[i])
            window = np.concatenate([stream.overlap, x])
            stream.overlap = window[len(window) - stream.settings.overlap :]
            out.append(window)
        return out

    def step(self, streams: list[ParaformerStream], pieces: list[np.ndarray], finals: list[bool]) -> list[list[int]]:
        """One chunk of each stream through encoder, CIF and decoder in one batch: the token ids each fired."""
        windows = self.windows(streams, pieces, finals)
        caches, settings = [s.net_cache for s in streams], [s.settings for s in streams]
        enc, lens, alphas = self.net.encode_chunks(windows, caches, settings)
        alphas = mask_alphas(alphas, lens, settings, finals)
        embeds, res_alpha, res_hidden = fire_chunk(
            enc, alphas, np.array([s.cif_alpha for s in streams], np.float32), np.stack([s.cif_hidden for s in streams]),
            np.array(finals), self.tail_threshold,
        )
        for i, s in enumerate(streams):
            s.cif_alpha, s.cif_hidden = res_alpha[i], res_hidden[i]
        fired = [i for i, e in enumerate(embeds) if len(e)]
        out: list[list[int]] = [[] for _ in streams]
        if fired:
            got = self.net.decode_chunks(enc[fired], lens[fired], [embeds[i] for i in fired],
                                         [caches[i] for i in fired], [settings[i] for i in fired])
            for i, g in zip(fired, got):
                out[i] = [t for t in g if t not in self.drop]
        return out

    def __call__(self, items: list[AudioItem], options: StreamASROptions = StreamASROptions()) -> list[dict]:
        """FunASR's streaming ``generate``: with ``options.cache`` the one item is the next audio of the stream it
        holds, and the result is the text of the tokens fired by this call; without a cache every item is a whole
        utterance, all decoded together."""
        settings = (options.chunk_size, options.encoder_chunk_look_back, options.decoder_chunk_look_back)
        if options.cache is None:
            streams = [self.create_stream(*settings, key=item.key) for item in items]
            for stream, item in zip(streams, items):
                stream.accept_waveform(item.waveform)
                stream.input_finished()
            return self.decode_streams(streams)
        (item,) = items
        final = bool(options.is_final) or isinstance(item.source, (str, Path))  # a file or URL is a whole utterance
        stream = stream_in_cache(options.cache, ParaformerStream, lambda: self.create_stream(*settings))
        stream.key = item.key
        stream.accept_waveform(item.waveform)
        if final:
            stream.input_finished()
        result = self.decode_stream(stream)
        if final:  # the dict continues with a fresh stream, made with this call's settings (as the reference)
            options.cache[CACHE_KEY] = self.create_stream(*settings)
        return [result]
