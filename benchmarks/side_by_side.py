"""One timed AutoModel run, printed as JSON: runs under our interpreter or under one with FunASR installed.

Both toolkits speak the same API, so the same code measures either (the other interpreter must not
see this repository on its path: it has our import name).

    python benchmarks/side_by_side.py asr MODEL_DIR WAV THREADS REPEAT
    python benchmarks/side_by_side.py pipeline ASR_DIR VAD_DIR PUNC_DIR WAV THREADS
"""
import json
import resource
import sys
import time


def main() -> None:
    """Run the measurement named by argv[1]."""
    import soundfile as sf
    import torch
    from funasr import AutoModel

    mode, args = sys.argv[1], sys.argv[2:]
    common = {"device": "cpu", "disable_update": True, "disable_pbar": True, "disable_log": True}
    if mode == "asr":
        model_dir, wav, threads, repeat = args
        torch.set_num_threads(int(threads))
        model = AutoModel(model=model_dir, ncpu=int(threads), **common)
        model.generate(input=wav)
        times, res = [], None
        for _ in range(int(repeat)):
            start = time.perf_counter()
            res = model.generate(input=wav)
            times.append(time.perf_counter() - start)
        wall = min(times)
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
