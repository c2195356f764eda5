"""Acoustic frontends: Kaldi fbank (funasr.fbank, numpy) -> LFR stacking -> CMVN, in numpy."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import kaldi_native_fbank as knf
import numpy as np

from funasr.errors import ConfigError
from funasr.fbank import WINDOWS, Fbank, FbankStream
from funasr.registry import register

SAMPLE_SCALE = 32768.0  # the reference feeds int16-range samples to fbank


def load_cmvn(path: Union[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read a Kaldi nnet-text ``am.mvn``: the ``<AddShift>`` and ``<Rescale>`` vectors."""
    lines = Path(path).read_text().splitlines()
    shift = scale = None
    for i, line in enumerate(lines):
        head = line.split()[:1]
        if head == ["<AddShift>"]:
            shift = np.array(lines[i + 1].split()[3:-1], dtype=np.float32)
        elif head == ["<Rescale>"]:
            scale = np.array(lines[i + 1].split()[3:-1], dtype=np.float32)
    if shift is None or scale is None:
        raise ConfigError(f"{path} is not a Kaldi CMVN file (no <AddShift>/<Rescale> lines)")
    return shift, scale


def apply_lfr(feats: np.ndarray, lfr_m: int, lfr_n: int) -> np.ndarray:
    """Stack ``lfr_m`` frames every ``lfr_n``: (T, D) -> (ceil(T/lfr_n), lfr_m*D)."""
    if lfr_m == 1 and lfr_n == 1:
        return feats
    t, d = feats.shape
    if t == 0:
        return np.zeros((0, lfr_m * d), dtype=feats.dtype)
    pad = (lfr_m - 1) // 2
    padded = np.concatenate([np.repeat(feats[:1], pad, axis=0), feats])
    idx = np.arange(-(-t // lfr_n))[:, None] * lfr_n + np.arange(lfr_m)[None, :]
    return padded[np.minimum(idx, len(padded) - 1)].reshape(-1, lfr_m * d)


class WavFrontend:
    """Offline frontend: waveforms (float in [-1, 1], 16 kHz) -> padded features."""

    def __init__(
        self,
        cmvn_file: Optional[str] = None,
        fs: int = 16000,
        window: str = "hamming",
        n_mels: int = 80,
        frame_length: int = 25,
        frame_shift: int = 10,
        lfr_m: int = 1,
        lfr_n: int = 1,
        dither: float = 0.0,
        **_: Any,
    ) -> None:
        self.fs, self.window, self.n_mels = fs, window, n_mels
        self.frame_length, self.frame_shift = frame_length, frame_shift
        self.lfr_m, self.lfr_n = lfr_m, lfr_n
        self.cmvn_file = cmvn_file
        self.cmvn = load_cmvn(cmvn_file) if cmvn_file else None
        # ``dither`` is a training-time augmentation: inference never dithers.
        self.frame_samples = (int(fs * frame_length / 1000), int(fs * frame_shift / 1000))  # (length, shift)
        self.fast_fbank = Fbank(fs, *self.frame_samples, n_mels, window) if window in WINDOWS else None

    def fbank_settings(self) -> tuple:
        """What the fbank frames depend on: two frontends with equal settings compute the same frames."""
        return (self.fs, self.window, self.n_mels, self.frame_length, self.frame_shift)

    def output_size(self) -> int:
        """Feature width after LFR stacking."""
        return self.n_mels * self.lfr_m

    def _options(self, frame_length_ms: float) -> knf.FbankOptions:
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = self.fs
        opts.frame_opts.frame_length_ms = frame_length_ms
        opts.frame_opts.frame_shift_ms = self.frame_shift
        opts.frame_opts.window_type = self.window
        opts.frame_opts.dither = 0.0
        opts.frame_opts.snip_edges = True
        opts.mel_opts.num_bins = self.n_mels
        opts.energy_floor = 0.0
        return opts

    def fbank(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel filterbank of one waveform: (N,) -> (T, n_mels)."""
        if 0 < len(waveform) < self.frame_length * self.fs // 1000:
            frame_length = 1000 * len(waveform) / self.fs  # the reference shrinks the one frame
            try:
                return _drain(_new_fbank(self._options(frame_length), waveform), 0, final=True)
            except ValueError:  # too short for the mel filters ("num_mel_bins too large"): no frame
                return np.zeros((0, self.n_mels), dtype=np.float32)
        return self._fbank(waveform)

    def _fbank(self, waveform: np.ndarray) -> np.ndarray:
        """Frames of whole ``frame_length`` windows (none if the waveform is shorter)."""
        if self.fast_fbank is not None:
            return self.fast_fbank(np.asarray(waveform, dtype=np.float32) * SAMPLE_SCALE)
        return _drain(_new_fbank(self._options(self.frame_length), waveform), 0, final=True)

    def from_fbank(self, fbank: np.ndarray) -> np.ndarray:
        """Features from fbank frames already computed: (T, n_mels) -> (T', output_size)."""
        return self.apply_cmvn(self.stack_frames(fbank))

    def stack_frames(self, fbank: np.ndarray) -> np.ndarray:
        """LFR stacking of ``lfr_m`` frames every ``lfr_n``: (T, n_mels) -> (T', output_size)."""
        return apply_lfr(fbank, self.lfr_m, self.lfr_n)

    def apply_cmvn(self, feats: np.ndarray) -> np.ndarray:
        """``(x + shift) * scale`` per dimension, from ``am.mvn``."""
        feats = feats.astype(np.float32, copy=False)
        if self.cmvn is not None:
            shift, scale = self.cmvn
            d = feats.shape[1]
            feats += shift[:d]  # in place: ``feats`` is always a fresh stacked array here
            feats *= scale[:d]
        return feats

    def extract(self, waveform: np.ndarray) -> np.ndarray:
        """Features of one waveform: (N,) -> (T, output_size)."""
        return self.from_fbank(self.fbank(waveform))

    def __call__(self, waveforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Features of a batch, zero-padded: (B, T, D) float32 and lengths (B,) int64."""
        feats = [self.extract(w) for w in waveforms]
        lens = np.array([len(f) for f in feats], dtype=np.int64)
        out = np.zeros((len(feats), int(lens.max(initial=0)), self.output_size()), dtype=np.float32)
        for i, f in enumerate(feats):
            out[i, : len(f)] = f
        return out, lens


class KnfStream:
    """kaldi-native-fbank's online fbank behind FbankStream's ``accept`` (windows funasr.fbank does not compute)."""

    def __init__(self, opts: knf.FbankOptions) -> None:
        self.online = knf.OnlineFbank(opts)
        self.fs = opts.frame_opts.samp_freq
        self.taken = 0

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """The frames completed by ``samples`` (int16 scale)."""
        if len(samples):
            self.online.accept_waveform(self.fs, samples)
        frames = _drain(self.online, self.taken, final=False)
        self.taken += len(frames)
        return frames


@dataclass
class FeatureStream:
    """The online frontend's state for one stream: the fbank computer and the LFR window over its frames."""

    fbank: Union[FbankStream, KnfStream]
    lfr_buf: np.ndarray  # (n, n_mels) fbank frames later LFR windows still need (edge-padded at the start)
    lfr_start: int = 0  # padded-frame index of lfr_buf[0]
    lfr_out: int = 0  # index of the next LFR frame to emit
    fbank_seen: int = 0  # fbank frames received so far
    kept: Optional[list[np.ndarray]] = field(default=None, repr=False)  # when a list: every fbank frame block, in order


class WavFrontendOnline(WavFrontend):
    """Frontend for chunked input: ``accept`` carries fbank and LFR state in a ``FeatureStream``."""

    def fbank(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel filterbank; never shrinks the frame, so < 1 frame of audio gives 0 frames."""
        return self._fbank(waveform)

    def create_stream(self) -> FeatureStream:
        """A fresh feature stream (nothing received yet)."""
        fbank = FbankStream(self.fast_fbank) if self.fast_fbank is not None else KnfStream(self._options(self.frame_length))
        return FeatureStream(fbank, np.zeros((0, self.n_mels), np.float32))

    def accept(self, waveform: np.ndarray, stream: FeatureStream, is_final: bool) -> np.ndarray:
        """Features (T, output_size) for the next chunk; over all chunks they equal ``extract`` of the whole signal."""
        return self.accept_many([waveform], [stream], [is_final])[0]

    def accept_many(self, waveforms: Sequence[np.ndarray], streams: Sequence[FeatureStream],
                    finals: Sequence[bool]) -> list[np.ndarray]:
        """``accept`` of each stream's next chunk, the fbank of all of them in one pass."""
        pieces = [np.asarray(w, dtype=np.float32) * SAMPLE_SCALE for w in waveforms]
        if self.fast_fbank is not None:
            frames = FbankStream.accept_many([s.fbank for s in streams], pieces)
        else:
            frames = [s.fbank.accept(p) for s, p in zip(streams, pieces)]
        return [self._stack(f, s, final) for f, s, final in zip(frames, streams, finals)]

    def _stack(self, frames: np.ndarray, stream: FeatureStream, is_final: bool) -> np.ndarray:
        """The LFR + CMVN frames that the stream's new fbank ``frames`` complete."""
        if stream.kept is not None:
            stream.kept.append(frames)
        pad = (self.lfr_m - 1) // 2
        buf = stream.lfr_buf
        if stream.fbank_seen == 0 and len(frames):
            buf = np.repeat(frames[:1], pad, axis=0)
        buf = np.concatenate([buf, frames])
        stream.fbank_seen += len(frames)
        start, first = stream.lfr_start, stream.lfr_out
        if is_final:
            stop = -(-stream.fbank_seen // self.lfr_n)
        else:  # emit only frames whose whole window has arrived
            stop = max(first, (start + len(buf) - self.lfr_m) // self.lfr_n + 1)
        if stop <= first or not len(buf):
            out = np.zeros((0, self.output_size()), dtype=np.float32)
        else:
            idx = np.arange(first, stop)[:, None] * self.lfr_n + np.arange(self.lfr_m)[None, :] - start
            stacked = buf[np.minimum(idx, len(buf) - 1)].reshape(len(idx), -1)
            out = self.apply_cmvn(stacked)
        keep_from = max(0, min(stop * self.lfr_n - start, len(buf)))
        stream.lfr_buf = buf[keep_from:]
        stream.lfr_start = start + keep_from
        stream.lfr_out = stop
        return out


def _new_fbank(opts: knf.FbankOptions, waveform: np.ndarray) -> knf.OnlineFbank:
    online = knf.OnlineFbank(opts)
    if len(waveform):
        online.accept_waveform(opts.frame_opts.samp_freq, np.asarray(waveform, dtype=np.float32) * SAMPLE_SCALE)
    return online


def _drain(online: knf.OnlineFbank, first: int, final: bool) -> np.ndarray:
    """Take the ready frames from index ``first`` out of ``online`` (finishing the input if ``final``)."""
    if final:
        online.input_finished()
    n = online.num_frames_ready
    if n <= first:
        return np.zeros((0, online.dim), dtype=np.float32)
    frames = np.stack([online.get_frame(i) for i in range(first, n)])
    online.pop(n - first)
    return frames


register()(WavFrontend)
register()(WavFrontendOnline)
