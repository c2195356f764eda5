"""Training throughput (audio seconds per wall second) and peak RSS of funasr-train, beside FunASR's trainer.

    python benchmarks/train.py                                    # ours only: small and large
    python benchmarks/train.py --reference-python /work/refvenv/bin/python --sizes small --steps 200

Both trainers run the same config, jsonl lists, token list, am.mvn and batches (``batch_type`` example,
4 clips a batch) as separate processes on ``--threads`` threads, from random initial weights. "small" is
the tiny Paraformer of egs/aishell/paraformer/conf/paraformer_tiny.yaml; "large" is the released
Paraformer-large config (SAN-M 50 + 16 blocks, d=512, 8404 tokens). The corpus is clips of the test
audio (tests/training.py), labelled with made-up transcripts. Throughput counts the training audio of
every epoch over the whole run's wall time (start-up and per-epoch validation on 2 clips included for
both), and over the trainer process's CPU time (user + system: the fairer figure on a shared machine).
The loss of each step goes to a PNG (``--plot``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from common import SPEC_CONFIGS, table  # noqa: E402

CONFIGS = {
    "small": ROOT / "egs" / "aishell" / "paraformer" / "conf" / "paraformer_tiny.yaml",
    "large": SPEC_CONFIGS / "paraformer.config.yaml",
}
VOCAB = {"small": None, "large": 8404}  # None: the corpus's characters
BATCH = 4
CLIPS = 40  # 10 steps an epoch


def prepare(work: Path, size: str) -> dict[str, Path]:
    """Corpus, lists, token list, am.mvn and the config of ``size`` under ``work``."""
    from funasr.data.jsonl import scp2jsonl
    from funasr.train.prepare import compute_cmvn, token_list, write_am_mvn
    from training import make_corpus

    work.mkdir(parents=True, exist_ok=True)
    lists = make_corpus(work / "corpus", n=CLIPS)
    train = work / "train.jsonl"
    scp2jsonl([str(lists["wav.scp"]), str(lists["text"])], ["source", "target"], str(train))
    valid = work / "valid.jsonl"
    valid.write_text("".join(train.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    cfg = yaml.safe_load(CONFIGS[size].read_text(encoding="utf-8"))
    cfg.pop("dataset_conf", None)
    cfg["train_conf"] = {"max_epoch": 1, "grad_clip": 5, "log_interval": 1, "keep_nbest_models": 2, "avg_nbest_model": 0}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    texts = [line.split(maxsplit=1)[1] for line in lists["text"].read_text(encoding="utf-8").splitlines()]
    tokens = token_list(texts)
    if VOCAB[size]:
        fill = [chr(0x4E00 + i) for i in range(0x9FA5 - 0x4E00) if chr(0x4E00 + i) not in tokens]
        tokens = tokens[:-1] + fill[: VOCAB[size] - len(tokens)] + tokens[-1:]
    (work / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    write_am_mvn(work / "am.mvn", *compute_cmvn([train], cfg["frontend"], cfg["frontend_conf"]))
    seconds = sum(sf.info(line.split()[1]).duration for line in lists["wav.scp"].read_text().splitlines())
    return {"train": train, "valid": valid, "config": work / "config.yaml", "tokens": work / "tokens.json",
            "cmvn": work / "am.mvn", "seconds": seconds}


def overrides(files: dict, out: Path, epochs: int, lr: float, warmup: int) -> list[str]:
    """The ``++key=value`` arguments both trainers take."""
    return [
        "--config-path", str(files["config"].parent), "--config-name", files["config"].name,
        f"++train_data_set_list={files['train']}", f"++valid_data_set_list={files['valid']}",
        f"++tokenizer_conf.token_list={files['tokens']}", f"++frontend_conf.cmvn_file={files['cmvn']}",
        f"++output_dir={out}", f"++train_conf.max_epoch={epochs}", "++train_conf.resume=false",
        "++dataset_conf.batch_type=example", f"++dataset_conf.batch_size={BATCH}", "++dataset_conf.num_workers=0",
        "++dataset_conf.shuffle=true", f"++optim_conf.lr={lr}", f"++scheduler_conf.warmup_steps={warmup}",
        "++device=cpu", "++seed=0",
    ]


def run(cmd: list[str], env: dict, log: Path) -> tuple[float, float, float]:
    """Run ``cmd`` (output to ``log``); (wall seconds, peak RSS MiB, CPU seconds (user + system) of that process)."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=log.parent)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed; see {log}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def our_losses(out: Path) -> list[float]:
    """Per-step training losses recorded in our model.pt."""
    import torch

    return [h["loss"] for h in torch.load(out / "model.pt", map_location="cpu", weights_only=True)["history"]]


_REF_LOSS = re.compile(r"total step: (\d+).*?loss_avg_rank: ([-\d.naif]+)")


def reference_losses(log: Path) -> list[float]:
    """Per-step losses FunASR's trainer logged (``total step: N, ... (loss_avg_rank: X)``)."""
    steps: dict[int, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = _REF_LOSS.search(line)
        if m:
            steps[int(m.group(1))] = float(m.group(2))
    return [steps[k] for k in sorted(steps)]


def bench(size: str, steps: int, threads: int, reference: str | None, ref_path: str | None, work: Path) -> dict:
    """Run ours (and the reference) on ``size`` for about ``steps`` optimizer steps."""
    files = prepare(work / size, size)
    epochs = math.ceil(steps / math.ceil(CLIPS / BATCH))
    lr, warmup = (0.002, 50) if size == "small" else (0.0005, 100)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("PYTHONPATH", None)
    rows = {}
    ours_out = work / size / "ours"
    wall, rss, cpu = run([sys.executable, "-m", "funasr.bin.train", *overrides(files, ours_out, epochs, lr, warmup)],
                         {**env, "PYTHONPATH": str(ROOT)}, work / size / "ours.log")
    rows["funasr (ours)"] = {"wall": wall, "rss": rss, "cpu": cpu, "losses": our_losses(ours_out)}
    if reference:
        ref_out = work / size / "reference"
        ref_args = ["++dataset=AudioDataset", "++dataset_conf.index_ds=IndexDSJsonl", "++dataset_conf.batch_sampler=BatchSampler",
                    "++train_conf.log_interval=1", "++train_conf.keep_nbest_models=2", "++train_conf.avg_nbest_model=1"]
        ref_env = {**env, "PYTHONPATH": ref_path} if ref_path else env
        wall, rss, cpu = run([reference, "-m", "funasr.bin.train", *overrides(files, ref_out, epochs, lr, warmup), *ref_args],
                             ref_env, work / size / "reference.log")
        rows["FunASR 1.4.16"] = {"wall": wall, "rss": rss, "cpu": cpu, "losses": reference_losses(work / size / "reference.log")}
    audio = files["seconds"] * epochs
    for row in rows.values():
        row["audio_s_per_s"] = audio / row["wall"]
        row["audio_s_per_cpu_s"] = audio / row["cpu"]
    return rows


def plot(results: dict, path: Path) -> None:
    """Loss per step, ours beside the reference, one panel per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (size, rows) in zip(axes[0], results.items()):
        for name, row in rows.items():
            ax.plot(range(1, len(row["losses"]) + 1), row["losses"], label=name, linewidth=1)
        ax.set_title(f"{size}: training loss per step")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference-python", help="python of a venv with funasr==1.4.16 (FunASR's trainer) installed")
    p.add_argument("--reference-pythonpath", help="PYTHONPATH of the reference runs (e.g. a torchaudio without its C extension)")
    p.add_argument("--sizes", default="small,large", help="small, large or both (default)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps of the small run (default 200)")
    p.add_argument("--large-steps", type=int, default=20, help="optimizer steps of the large run (default 20)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="/tmp/funasr-train-bench", help="scratch folder")
    p.add_argument("--plot", default=str(ROOT / "docs" / "train_loss.png"), help="loss curves PNG")
    args = p.parse_args()
    results = {}
    for size in args.sizes.split(","):
        steps = args.steps if size == "small" else args.large_steps
        results[size] = bench(size, steps, args.threads, args.reference_python, args.reference_pythonpath, Path(args.work))
    rows = []
    for size, runs in results.items():
        base = runs.get("FunASR 1.4.16")
        for name, r in runs.items():
            speedup = f"{r['audio_s_per_s'] / base['audio_s_per_s']:.2f}x" if base else "-"
            last = sum(r["losses"][-10:]) / max(1, len(r["losses"][-10:]))
            cpu_speedup = f"{r['audio_s_per_cpu_s'] / base['audio_s_per_cpu_s']:.2f}x" if base else "-"
            rows.append([size, name, len(r["losses"]), f"{r['wall']:.1f}", f"{r['audio_s_per_s']:.2f}", speedup,
                         f"{r['audio_s_per_cpu_s']:.2f}", cpu_speedup, f"{r['rss']:.0f}", f"{last:.3f}"])
    print(table(rows, ["config", "trainer", "steps", "wall s", "audio s / s", "vs FunASR", "audio s / CPU s",
                       "vs FunASR (CPU)", "peak RSS MiB", "loss (last 10 steps)"]))
    plot(results, Path(args.plot))
    print(f"loss curves: {args.plot}")


if __name__ == "__main__":
    main()
