"""Fbank -> LFR -> CMVN against the reference's features, offline and chunked."""
import numpy as np
import pytest

from conftest import BUNDLED_VAD, MODELS, PARITY, read_wave
from funasr.frontend import WavFrontend, WavFrontendOnline, apply_lfr, load_cmvn

ASR_MVN = MODELS / "paraformer_tiny" / "am.mvn"


def test_asr_features_match_reference():
    ref = np.load(PARITY / "intermediates" / "paraformer_tiny__example.npz")
    feats, lens = WavFrontend(cmvn_file=str(ASR_MVN), lfr_m=7, lfr_n=6)([read_wave("example.wav")])
    assert feats.shape == ref["feats"].shape and list(lens) == list(ref["feats_len"])
    np.testing.assert_allclose(feats, ref["feats"], atol=1e-4)


def test_vad_features_match_reference():
    ref = np.load(PARITY / "intermediates" / "fsmn-vad__example.npz")
    feats, _ = WavFrontendOnline(cmvn_file=str(BUNDLED_VAD / "am.mvn"), lfr_m=5, lfr_n=1)([read_wave("example.wav")])
    np.testing.assert_allclose(feats, ref["feats"], atol=1e-4)


@pytest.mark.parametrize("chunk", [1000, 1120, 3200, 9600])
@pytest.mark.parametrize("lfr", [(5, 1), (7, 6)])
def test_chunked_features_equal_offline(chunk, lfr):
    wave = read_wave("example.wav")
    fe = WavFrontendOnline(cmvn_file=str(ASR_MVN if lfr == (7, 6) else BUNDLED_VAD / "am.mvn"), lfr_m=lfr[0], lfr_n=lfr[1])
    stream = fe.create_stream()
    parts = [fe.accept(wave[i : i + chunk], stream, i + chunk >= len(wave)) for i in range(0, len(wave), chunk)]
    np.testing.assert_array_equal(np.concatenate(parts), fe.extract(wave))


def test_batch_is_zero_padded_per_item():
    a, b = read_wave("example.wav"), read_wave("sample.wav")
    fe = WavFrontend(cmvn_file=str(ASR_MVN), lfr_m=7, lfr_n=6)
    feats, lens = fe([a, b])
    for i, w in enumerate([a, b]):
        one = fe.extract(w)
        assert lens[i] == len(one)
        np.testing.assert_array_equal(feats[i, : lens[i]], one)
        assert not feats[i, lens[i] :].any()


def test_lfr_replicates_edges():
    x = np.arange(10, dtype=np.float32)[:, None]
    out = apply_lfr(x, 7, 6)
    assert out.shape == (2, 7)
    assert out[0].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert out[1].tolist() == [3, 4, 5, 6, 7, 8, 9]


def test_short_audio_shrinks_the_frame_offline_only():
    short = read_wave("example.wav")[3000:3300]
    assert WavFrontend(lfr_m=7, lfr_n=6).extract(short).shape[0] == 1
    assert WavFrontendOnline(lfr_m=5, lfr_n=1).extract(short).shape[0] == 0


def test_cmvn_reads_shift_and_scale_not_splice():
    shift, scale = load_cmvn(ASR_MVN)
    assert shift.shape == scale.shape == (560,)
    assert shift[0] != 0 and scale[0] > 0


def _kaldi_fbank_f64(samples: np.ndarray, window: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """Kaldi fbank written out frame by frame in float64 (no dither, 25/10 ms at 16 kHz, 512-point FFT)."""
    out = []
    for start in range(0, len(samples) - 399, 160):
        y = samples[start : start + 400].astype(np.float64)
        y = y - y.mean()
        y = np.concatenate([[0.03 * y[0]], y[1:] - 0.97 * y[:-1]]) * window
        power = np.abs(np.fft.rfft(y, 512)[:256]) ** 2
        out.append(np.log(np.maximum(power @ mel, np.finfo(np.float32).eps)))
    return np.array(out)


@pytest.mark.parametrize("window", ["hamming", "povey"])
def test_numpy_fbank_matches_kaldi_native_fbank(window):
    import kaldi_native_fbank as knf

    from funasr.fbank import Fbank, mel_matrix, window_function

    wave = np.concatenate([np.zeros(800, np.float32), read_wave("example.wav")]) * 32768  # a silent start too
    ours = Fbank(16000, 400, 160, 80, window)(wave)
    opts = knf.FbankOptions()
    opts.frame_opts.dither, opts.frame_opts.window_type, opts.mel_opts.num_bins, opts.energy_floor = 0.0, window, 80, 0.0
    online = knf.OnlineFbank(opts)
    online.accept_waveform(16000, wave)
    theirs = np.stack([online.get_frame(i) for i in range(online.num_frames_ready)])
    assert ours.shape == theirs.shape
    # Equal to a float64 Kaldi fbank; kaldi-native-fbank computes in float32, which moves its quietest
    # mel bins (log energy < 12, under ~0.5 % of values here) by up to ~2e-3 and the rest by < 1e-4.
    np.testing.assert_allclose(ours, _kaldi_fbank_f64(wave, window_function(window, 400), mel_matrix(16000, 512, 80)), atol=1e-5)
    loud = theirs > 12
    np.testing.assert_allclose(ours[loud], theirs[loud], atol=1e-4)
    np.testing.assert_allclose(ours, theirs, atol=3e-3)
    assert np.mean(np.abs(ours - theirs) > 1e-4) < 0.01


def test_fbank_stream_equals_whole_signal():
    from funasr.fbank import Fbank, FbankStream

    wave = read_wave("example.wav") * 32768
    fbank = Fbank(16000, 400, 160, 80)
    stream = FbankStream(fbank)
    parts = [stream.accept(wave[i : i + 333]) for i in range(0, len(wave), 333)]
    np.testing.assert_array_equal(np.concatenate(parts), fbank(wave))


@pytest.mark.parametrize("lfr", [(5, 1), (7, 6)])
def test_many_streams_in_one_fbank_pass_equal_each_alone(lfr):
    """``accept_many``: several streams' chunks (unequal, some shorter than a frame, one empty) in one fbank pass give
    each stream what ``accept`` alone gives."""
    waves = [read_wave("example.wav"), read_wave("sample.wav")[:30000], read_wave("pub_concat.wav")[5000:40000]]
    fe = WavFrontendOnline(cmvn_file=str(ASR_MVN if lfr == (7, 6) else BUNDLED_VAD / "am.mvn"), lfr_m=lfr[0], lfr_n=lfr[1])
    steps = [960, 300, 5000]
    alone, together = [fe.create_stream() for _ in waves], [fe.create_stream() for _ in waves]
    want: list[list] = [[] for _ in waves]
    got: list[list] = [[] for _ in waves]
    for k in range(max(len(w) // s + 1 for w, s in zip(waves, steps))):
        pieces = [w[k * s : (k + 1) * s] for w, s in zip(waves, steps)]
        finals = [(k + 1) * s >= len(w) and k * s < len(w) for w, s in zip(waves, steps)]
        live = [i for i, w in enumerate(waves) if k * steps[i] < len(w)]
        for i in live:
            want[i].append(fe.accept(pieces[i], alone[i], finals[i]))
        for i, feats in zip(live, fe.accept_many([pieces[i] for i in live], [together[i] for i in live], [finals[i] for i in live])):
            got[i].append(feats)
    for g, w, wave in zip(got, want, waves):
        np.testing.assert_allclose(np.concatenate(g), np.concatenate(w), rtol=1e-6, atol=1e-5)
        assert len(np.concatenate(g)) == len(fe.extract(wave))
    assert fe.accept_many([], [], []) == []


def test_fbank_runs_numpy_blas_on_one_thread_and_gives_the_setting_back():
    # OpenBLAS workers woken for the small mel product spin on after it, taking a core from the engine that runs next
    import threading

    from threadpoolctl import ThreadpoolController

    from funasr.fbank import Fbank, one_blas_thread

    controller = ThreadpoolController()

    def blas_threads() -> set:
        return {lib["num_threads"] for lib in controller.select(user_api="blas").info()}

    if not blas_threads():
        pytest.skip("numpy has no BLAS library threadpoolctl can see")
    with controller.limit(limits=2, user_api="blas"):
        inside, entered, leave = [], threading.Event(), threading.Event()

        def second_user() -> None:
            with one_blas_thread():
                entered.set()
                leave.wait(10)
                inside.append(blas_threads())

        with one_blas_thread():
            inside.append(blas_threads())
            other = threading.Thread(target=second_user)
            other.start()
            assert entered.wait(10)
        inside.append(blas_threads())  # the other user is still inside
        leave.set()
        other.join(10)
        assert inside == [{1}, {1}, {1}] and blas_threads() == {2}
        feats = Fbank(16000, 400, 160, 80)(read_wave("example.wav") * 32768)
        assert feats.shape[1] == 80 and blas_threads() == {2}
