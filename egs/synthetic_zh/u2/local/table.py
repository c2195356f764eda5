"""The WeNet paper's table from decoded folders: CER (and RTF) per decoding mode x decoding chunk size, one per test set.

    python local/table.py exp/u2pp 5 test test_noisy test_espeak

reads ``<exp>/decode_<set>_avg<N>/<mode>_chunk<C>/text.cer`` (funasr-cer's output) and ``rtf`` (local/decode.py).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from funasr.search import METHODS


def cell(folder: Path, name: str) -> str:
    """The CER (``text.cer``) or RTF (``rtf``) of one decoded folder, or ``-`` where it was not decoded."""
    path = folder / name
    if not path.is_file():
        return "-"
    text = path.read_text(encoding="utf-8")
    if name == "rtf":
        return f"{float(text):.4f}"
    found = re.search(r"%CER ([0-9.]+)", text)
    return found.group(1) if found else "-"


def chunks_of(decoded: Path) -> list[int]:
    """The decoding chunk sizes present, full context (-1) first, then largest to smallest."""
    sizes = {int(p.name.rsplit("_chunk", 1)[1]) for p in decoded.glob("*_chunk*") if p.is_dir()}
    return sorted(sizes, key=lambda c: (c > 0, -c))


def table(decoded: Path, name: str) -> str:
    """Markdown table of ``name`` (text.cer or rtf) for one decoded test set."""
    chunks = chunks_of(decoded)
    head = ["decoding mode", *("full" if c < 0 else str(c) for c in chunks)]
    rows = [[mode, *(cell(decoded / f"{mode}_chunk{c}", name) for c in chunks)] for mode in METHODS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("exp", type=Path, help="the training output folder")
    p.add_argument("avg_num", type=int, help="N of model.pt.avgN, as decoded")
    p.add_argument("sets", nargs="+", help="test set names")
    args = p.parse_args()
    for name in args.sets:
        decoded = args.exp / f"decode_{name}_avg{args.avg_num}"
        print(f"\n{name}: CER (%)\n\n{table(decoded, 'text.cer')}")
        print(f"\n{name}: RTF (one utterance at a time)\n\n{table(decoded, 'rtf')}")


if __name__ == "__main__":
    main()
