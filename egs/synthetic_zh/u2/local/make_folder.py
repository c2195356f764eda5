"""The WeNet folder a U2 run starts from: train.yaml (the conf with output_dim and special tokens), units.txt.

    python local/make_folder.py conf/train_u2++_conformer.yaml tokens.json exp/u2pp/init
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("conf", help="WeNet train.yaml of the model")
    p.add_argument("tokens", help="tokens.json of funasr-token-list (<blank> <s> </s> characters... <unk>)")
    p.add_argument("folder", help="where to write train.yaml and units.txt")
    args = p.parse_args()
    tokens = json.loads(Path(args.tokens).read_text(encoding="utf-8"))
    units = ["<blank>", "<unk>", *[t for t in tokens if t not in ("<blank>", "<s>", "</s>", "<unk>")], "<sos/eos>"]
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "units.txt").write_text("".join(f"{u} {i}\n" for i, u in enumerate(units)), encoding="utf-8")
    cfg = yaml.safe_load(Path(args.conf).read_text(encoding="utf-8"))
    eos = len(units) - 1
    cfg.update(input_dim=cfg["dataset_conf"]["fbank_conf"]["num_mel_bins"], output_dim=len(units))
    cfg["tokenizer_conf"]["special_tokens"] = {"<blank>": 0, "<unk>": 1, "<sos>": eos, "<eos>": eos}
    (folder / "train.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    print(f"{folder}: {len(units)} units")


if __name__ == "__main__":
    main()
