"""Stage 2 (first half): Kaldi-style wav.scp and text of every synthesised file so far, plus corpus statistics.

For each subset folder OUT/wav/<subset>/ the finished files listed in its meta.tsv (and meta.<job>.tsv) become
DATA/<subset>/wav.scp and DATA/<subset>/text; stats.json gets hours per subset and engine, and each
engine's speed in audio seconds per CPU second.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthesize import SUBSETS, read_list


def subset_lists(corpus: Path, text_dir: Path, data: Path) -> dict:
    """Write DATA/<subset>/{wav.scp,text} for the finished files; returns the statistics."""
    stats: dict = {"subsets": {}, "engines": {}}
    for subset in SUBSETS:
        folder = corpus / "wav" / subset.name
        metas = sorted(folder.glob("meta*.tsv"))
        if not metas:
            continue
        texts = {subset.prefix + key: text for key, text in read_list(text_dir / f"{subset.source}.txt")}
        rows = {}
        for line in (x for meta in metas for x in meta.read_text(encoding="utf-8").splitlines()):
            key, engine, *_, seconds, cpu = line.split("\t")
            if (folder / f"{key}.wav").exists() and key in texts:
                rows[key] = (engine, float(seconds), float(cpu))
        out = data / subset.name
        out.mkdir(parents=True, exist_ok=True)
        keys = sorted(rows)
        (out / "wav.scp").write_text("".join(f"{k} {folder / k}.wav\n" for k in keys), encoding="utf-8")
        (out / "text").write_text("".join(f"{k} {texts[k]}\n" for k in keys), encoding="utf-8")
        hours: dict = {}
        for engine, seconds, cpu in rows.values():
            hours[engine] = hours.get(engine, 0.0) + seconds / 3600
            total = stats["engines"].setdefault(engine, {"audio_s": 0.0, "cpu_s": 0.0})
            total["audio_s"] += seconds
            total["cpu_s"] += cpu
        stats["subsets"][subset.name] = {"utterances": len(keys), "hours": round(sum(hours.values()), 3),
                                         "hours_by_engine": {e: round(h, 3) for e, h in sorted(hours.items())}}
    for total in stats["engines"].values():
        total["audio_s_per_cpu_s"] = round(total["audio_s"] / max(total["cpu_s"], 1e-9), 1)
    return stats


def main(argv=None) -> None:
    """Command line of the list making."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, required=True, help="synthesis output folder (has wav/)")
    p.add_argument("--text-dir", type=Path, required=True, help="stage 0 sentence lists")
    p.add_argument("--data", type=Path, required=True, help="where <subset>/wav.scp and text go")
    args = p.parse_args(argv)
    stats = subset_lists(args.corpus, args.text_dir, args.data)
    (args.data / "stats.json").write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(stats, ensure_ascii=False))


if __name__ == "__main__":
    main()
