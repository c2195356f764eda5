"""Decode a wav.scp with a trained U2 folder in each decoding mode and chunk size: ``<out>/<mode>_chunk<C>/text``
and ``rtf`` (decoding wall time / audio time, one utterance at a time on ``--threads`` threads).

    python local/decode.py exp/u2pp data/test/wav.scp exp/u2pp/decode_test --init-param exp/u2pp/model.pt.avg5
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from funasr.search import METHODS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="the training output folder")
    p.add_argument("wav_scp")
    p.add_argument("out")
    p.add_argument("--init-param", help="checkpoint to decode with (default: the folder's model.pt)")
    p.add_argument("--modes", default=",".join(METHODS))
    p.add_argument("--chunks", default="-1,16,8,4", help="decoding_chunk_size values (-1: full context)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args()
    import soundfile as sf
    import torch

    from funasr import AutoModel

    torch.set_num_threads(args.threads)

    extra = {"init_param": args.init_param} if args.init_param else {}
    model = AutoModel(model=args.model, device=args.device, disable_pbar=True, **extra)
    lines = [line.split(maxsplit=1) for line in Path(args.wav_scp).read_text(encoding="utf-8").splitlines() if line.strip()]
    audio_s = sum(sf.info(path).duration for _, path in lines)
    for mode in args.modes.split(","):
        for chunk in (int(c) for c in args.chunks.split(",")):
            out = Path(args.out) / f"{mode}_chunk{chunk}"
            out.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            results = model.generate(input=[path for _, path in lines], key=[key for key, _ in lines],
                                     decoding_method=mode, decoding_chunk_size=chunk, batch_size=1)
            rtf = (time.perf_counter() - start) / audio_s
            text = "".join(f"{key} {r.get('text', '')}\n" for (key, _), r in zip(lines, results))
            (out / "text").write_text(text, encoding="utf-8")
            (out / "rtf").write_text(f"{rtf:.4f}\n", encoding="utf-8")
            print(f"{out}/text (RTF {rtf:.4f})")


if __name__ == "__main__":
    main()
