"""The ``funasr-export`` command: export a model to ONNX (fp32 / int8), TorchScript or TensorRT."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from funasr.errors import FunASRError

log = logging.getLogger("funasr.export")

EXAMPLES = """\
examples:
  funasr-export --model paraformer-zh --type onnx --quantize
  funasr-export --model ./my_model_dir --type torchscript --output-dir exported/
  funasr-export --model paraformer-zh --format sherpa-onnx --quantize   (model.onnx, model.int8.onnx, tokens.txt)
  funasr-export ++model=fsmn-vad ++type=onnx ++quantize=true     (FunASR's hydra style)
"""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def from_hydra_style(argv: Sequence[str]) -> list[str]:
    """Turn FunASR's ``++key=value`` arguments into ``--key value`` options (booleans as flags)."""
    out: list[str] = []
    for arg in argv:
        if not arg.startswith("++") or "=" not in arg:
            out.append(arg)
            continue
        key, value = arg[2:].split("=", 1)
        option = "--" + key.replace("_", "-")
        if key in ("quantize", "fp16"):
            if value.lower() in _TRUE:
                out.append(option)
            elif value.lower() in _FALSE:
                out.append("--no-" + key)
            else:
                out += [option + "=" + value]  # argparse reports the bad value
        elif key in ("calib_num", "fallback_num", "fallback-num"):
            log.debug("ignoring %s (accepted by FunASR, unused there too)", arg)
        else:
            out += [option, value]
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments (``--key value`` or FunASR's ``++key=value``)."""
    p = argparse.ArgumentParser(
        prog="funasr-export",
        description="Export a FunASR model (VAD, Paraformer family, CT-Transformer) next to copies of its "
        "config, CMVN and token files, ready for the funasr_onnx runtime, LibTorch or TensorRT.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model name, hub id or local folder")
    p.add_argument("--type", "--format", default="onnx", choices=["onnx", "torchscript", "tensorrt", "sherpa-onnx"],
                   help="what to write (default: onnx); sherpa-onnx: files sherpa-onnx loads (default folder: <model folder>/sherpa-onnx)")
    p.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=False, help="also write int8 *_quant.onnx")
    p.add_argument("--weight-type", default="uint8", choices=["uint8", "int8"],
                   help="int8 files' MatMul weights: uint8 as FunASR (default), or int8 (for other int8 runtimes on CPUs with "
                        "VNNI/AMX; onnxruntime's AVX2-only kernels give wrong sums on them)")
    p.add_argument("--output-dir", help="where to write (default: the model folder, as FunASR does, "
                   "or ./exported/<name> for a model inside the package, such as fsmn-vad, or in a read-only folder)")
    p.add_argument("--device", default="cpu", help="device the model is loaded on and TorchScript traced on (default: cpu)")
    p.add_argument("--hub", default="hf", choices=["hf", "ms"], help="where model names are downloaded from (default: hf)")
    p.add_argument("--opset-version", type=int, default=14, help="ONNX opset (default: 14)")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="TensorRT engine in fp16, from model_fp16.onnx (default: on)")
    return p.parse_args(from_hydra_style(list(sys.argv[1:] if argv is None else argv)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``funasr-export``; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from funasr.auto_model import AutoModel
        from funasr.export import check_export_args

        check_export_args(
            args.type, args.quantize, args.weight_type, args.opset_version, Path(args.output_dir) if args.output_dir else None
        )
        model = AutoModel(model=args.model, hub=args.hub, device=args.device, disable_pbar=True)
        out = model.export(
            type=args.type,
            quantize=args.quantize,
            output_dir=args.output_dir,
            weight_type=args.weight_type,
            opset_version=args.opset_version,
            fp16=args.fp16,
        )
    except FunASRError as e:
        print(f"funasr-export: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
