"""WeNet U2++ speed on CPU: RTF per decoding mode and chunk size, and per-chunk streaming latency,
PyTorch against funasr_onnx int8, for a WeNet-AISHELL-size model with random weights.

The model has the released AISHELL U2++ conformer shape (12 blocks, d 256, 4 heads, FF 2048, causal
conv kernel 8, conv2d x4; bitransformer decoder 3 + 3 blocks, 4233 units). Random CTC weights would
emit a token nearly every frame, so the CTC output bias favours blank (a few tokens per second,
as real speech gives); everything else stays random.

- RTF = decode time / audio time of ``--seconds`` of speech, one utterance, per method x chunk size.
- Latency: the time one ``decode_streams`` call takes for one new chunk (a stream fed 0.64 s at a time
  for chunk 16), median over the stream, excluding the final rescoring (reported on its own).

    python benchmarks/u2.py --seconds 8 --threads 1
    python benchmarks/u2.py --model exp/u2pp --init-param exp/u2pp/model.pt.avg5 --wav some.wav   # a trained model
    python benchmarks/u2.py --seconds 4 --methods ctc_prefix_beam_search,attention_rescoring

``attention`` on random weights never emits ``<eos>`` early, so it runs one decoder pass per encoder
frame and dominates the run; leave it out with ``--methods`` for a quick look.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runtime" / "python"))

import yaml  # noqa: E402

from common import FIXTURES, long_recording, table  # noqa: E402
from funasr.search import METHODS  # noqa: E402

TINY = FIXTURES / "parity" / "models" / "u2pp_conformer_tiny"
CHUNKS = (-1, 16, 8, 4)
VOCAB = 4233  # AISHELL-1 units


def aishell_size_folder(out: Path) -> Path:
    """A WeNet folder of the AISHELL U2++ shape with random weights (and a blank-leaning CTC bias)."""
    import torch

    from funasr.models.u2.config import read_model_dir
    from funasr.models.u2.model import U2Model

    cfg = yaml.safe_load((TINY / "train.yaml").read_text())
    cfg["encoder_conf"].update(output_size=256, attention_heads=4, linear_units=2048, num_blocks=12)
    cfg["decoder_conf"].update(attention_heads=4, linear_units=2048, num_blocks=3, r_num_blocks=3)
    cfg["output_dim"] = cfg["vocab_size"] = VOCAB
    cfg["tokenizer_conf"]["special_tokens"] = {"<blank>": 0, "<unk>": 1, "<sos>": VOCAB - 1, "<eos>": VOCAB - 1}
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    units = ["<blank>", "<unk>"] + [chr(0x4E00 + i) for i in range(VOCAB - 3)] + ["<sos/eos>"]
    (out / "units.txt").write_text("".join(f"{u} {i}\n" for i, u in enumerate(units)), encoding="utf-8")
    (out / "global_cmvn").write_text((TINY / "global_cmvn").read_text())
    torch.manual_seed(0)
    model = U2Model.from_config(read_model_dir(out), None, None)
    with torch.no_grad():
        model.ctc.ctc_lo.bias[0] += 6.0
    torch.save(model.state_dict(), out / "final.pt")
    return out


def rtf_rows(model, wav, seconds: float, methods: list[str]) -> dict:
    """RTF per (method, chunk) of ``model.generate``."""
    out = {}
    for chunk in CHUNKS:
        for method in methods:
            model.generate(input=wav, decoding_method=method, decoding_chunk_size=chunk)
            t = time.perf_counter()
            model.generate(input=wav, decoding_method=method, decoding_chunk_size=chunk)
            out[(method, chunk)] = (time.perf_counter() - t) / seconds
    return out


def latency(task, wav) -> tuple[float, float]:
    """Median time of a decode_streams call that encodes one chunk of 16, and of the final call (rescoring)."""
    stream = task.create_stream(16)
    step, times = 16 * 4 * 160, []
    for pos in range(0, len(wav), step):
        stream.accept_waveform(wav[pos : pos + step])
        if pos + step >= len(wav):
            stream.input_finished()
        t = time.perf_counter()
        task.decode_stream(stream)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:-1]), times[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated decoding methods")
    parser.add_argument("--model", help="a trained U2 folder instead of the random AISHELL-size one")
    parser.add_argument("--init-param", help="the checkpoint of --model to use (default: its own)")
    parser.add_argument("--wav", help="a recording to decode instead of --seconds of synthetic speech")
    args = parser.parse_args()
    methods = args.methods.split(",")
    import soundfile as sf
    import torch

    import funasr_onnx
    from funasr import AutoModel

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model or aishell_size_folder(Path(tmp) / "u2pp")
        wav = args.wav or str(Path(tmp) / "speech.wav")
        if not args.wav:
            sf.write(wav, long_recording(args.seconds, gap_s=(0.2, 0.5)), 16000)
        audio = sf.read(wav, dtype="float32")[0]
        seconds = len(audio) / 16000
        extra = {"init_param": args.init_param} if args.init_param else {}
        torch_model = AutoModel(model=str(folder), disable_pbar=True, **extra)
        exported = torch_model.export(type="onnx", quantize=True, output_dir=str(Path(tmp) / "onnx"))
        onnx_model = funasr_onnx.AutoModel(model=exported, quantize=True, intra_op_num_threads=args.threads, disable_pbar=True)
        rtf = {"pytorch": rtf_rows(torch_model, wav, seconds, methods),
               "onnx int8": rtf_rows(onnx_model, wav, seconds, methods)}
        lat = {"pytorch": latency(torch_model.task, audio), "onnx int8": latency(onnx_model.task, audio)}
    rows = [[m, "full" if c < 0 else c, f"{rtf['pytorch'][(m, c)]:.3f}", f"{rtf['onnx int8'][(m, c)]:.3f}"]
            for c in CHUNKS for m in methods]
    print(f"RTF, {seconds:g} s utterance, {args.threads} thread(s)")
    print(table(rows, ["method", "chunk", "PyTorch fp32", "ONNX int8"]))
    print(table([[k, f"{v[0] * 1000:.1f}", f"{v[1] * 1000:.1f}"] for k, v in lat.items()],
                ["engine", "per chunk of 16 (ms, median)", "final rescoring (ms)"]))
    print(json.dumps({"rtf": {f"{k}/{m}/{c}": v for k, d in rtf.items() for (m, c), v in d.items()}, "latency_s": lat}))


if __name__ == "__main__":
    main()
