"""One timed AutoModel run, printed as JSON: runs under our interpreter or under one with FunASR installed.

Both toolkits speak the same API, so the same code measures either (the other interpreter must not
see this repository on its path: it has our import name).

    python benchmarks/side_by_side.py asr MODEL_DIR WAV THREADS REPEAT
    python benchmarks/side_by_side.py pipeline ASR_DIR VAD_DIR PUNC_DIR WAV THREADS
    python benchmarks/side_by_side.py onnx EXPORTED_DIR WAV THREADS REPEAT fp32|int8
    python benchmarks/side_by_side.py stream MODEL_DIR WAV THREADS CHUNK_FRAMES   (streaming generate, per-call ms)

"onnx" runs FunASR's own onnxruntime package (pip ``funasr-onnx``, import name ``funasr_onnx``)
on a folder written by ``funasr-export``: reference interpreter only.
"""
import json
import resource
import sys
import time


def best_of(call, repeat: int):
    """(shortest wall time of ``repeat`` calls after a warm-up, last result)."""
    res = call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        res = call()
        times.append(time.perf_counter() - start)
    return min(times), res


def import_torchaudio() -> None:
    """Import torchaudio (FunASR does at import); a C extension built for another torch is replaced by its absence.

    FunASR uses torchaudio's pure-Python parts here (``compliance.kaldi`` fbank); with arrays as
    input nothing else is called, so the timing is unchanged.
    """
    import types

    try:
        import torchaudio  # noqa: F401
    except ModuleNotFoundError:  # not installed (our interpreter): nothing imports it
        return
    except OSError:
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]
        stub = types.ModuleType("torchaudio._extension")
        stub._IS_TORCHAUDIO_EXT_AVAILABLE = False
        stub._IS_ALIGN_AVAILABLE = False
        stub.fail_if_no_align = lambda f: f
        sys.modules["torchaudio._extension"] = stub
        import torchaudio  # noqa: F401


def main() -> None:
    """Run the measurement named by argv[1]."""
    import soundfile as sf

    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "onnx":
        from funasr_onnx import Paraformer

        model_dir, wav, threads, repeat, precision = args
        model = Paraformer(model_dir, quantize=precision == "int8", intra_op_num_threads=int(threads))
        wall, res = best_of(lambda: model(wav), int(repeat))
        preds = res[0]["preds"]  # text, or (text, tokens)
        text = preds[0] if isinstance(preds, (list, tuple)) else preds
        print(json.dumps({"wall": wall, "audio": sf.info(wav).duration, "text": text}, ensure_ascii=False))
        return
    import torch

    import_torchaudio()
    from funasr import AutoModel

    common = {"device": "cpu", "disable_update": True, "disable_pbar": True, "disable_log": True}
    if mode == "stream":  # FunASR's streaming call protocol, look-back 4 / 1: per-chunk latency
        model_dir, wav, threads, frames = args
        torch.set_num_threads(int(threads))
        model = AutoModel(model=model_dir, ncpu=int(threads), **common)
        audio = sf.read(wav, dtype="float32")[0]
        size, stride, cache, times = [0, int(frames), int(frames) // 2], int(frames) * 960, {}, []
        kwargs = {"chunk_size": size, "encoder_chunk_look_back": 4, "decoder_chunk_look_back": 1}
        for i in range(0, len(audio) - stride + 1, stride):
            start = time.perf_counter()
            model.generate(input=audio[i : i + stride], cache=cache, is_final=False, **kwargs)
            times.append((time.perf_counter() - start) * 1000)
        times = sorted(times[1:])
        print(json.dumps({"p50_ms": times[len(times) // 2], "p95_ms": times[int(len(times) * 0.95)], "chunks": len(times)}))
        return
    if mode == "asr":
        model_dir, wav, threads, repeat = args
        torch.set_num_threads(int(threads))
        model = AutoModel(model=model_dir, ncpu=int(threads), **common)
        wall, res = best_of(lambda: model.generate(input=wav), int(repeat))
    else:
        asr, vad, punc, wav, threads = args
        torch.set_num_threads(int(threads))
        model = AutoModel(model=asr, vad_model=vad, punc_model=punc, ncpu=int(threads), **common)
        start = time.perf_counter()
        res = model.generate(input=wav, batch_size_s=300)
        wall = time.perf_counter() - start
    print(json.dumps({
        "wall": wall,
        "audio": sf.info(wav).duration,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "text": res[0]["text"] if res else "",
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
