"""The ``funasr`` command: recognise (or segment, or punctuate) files, folders and list files."""
from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional, Sequence

from funasr.options import FORMATS, check_output_dir
from funasr.writers import OutputWriter

log = logging.getLogger("funasr.cli")

DEFAULT_VAD = "fsmn-vad"
DEFAULT_ASR, DEFAULT_PUNC = "paraformer-zh-small", "ct-punc-zh-small"  # bundled: transcription works offline
AUDIO_SUFFIXES = frozenset(
    ".wav .flac .mp3 .ogg .opus .m4a .aac .wma .webm .mp4 .mkv .amr .aiff .aif .au .caf .pcm".split()
)

DESCRIPTION = """\
Run a FunASR model over audio files, folders (every audio file inside, recursively) and list
files (wav.scp / .txt lines "key path", or .jsonl objects with "source" and "key").

Models: with neither --model nor --vad-model, funasr transcribes Mandarin with the models bundled
with the package, offline: fsmn-vad -> paraformer-zh-small -> ct-punc-zh-small (small models
trained on synthetic speech; see their model cards). --vad-model alone reports speech segments in
milliseconds. --model names an ASR model (paraformer-zh, paraformer-en, a hub id or a local
folder); it runs on whole files unless you also pass --vad-model (e.g. --vad-model fsmn-vad,
advised for recordings longer than a minute). --punc-model (ct-punc, ct-punc-c) punctuates the
ASR text. A punctuation model given as --model punctuates the texts given as inputs (or the
"key text" lines of a .txt file).

Results are printed as "key<TAB>text" lines; --output-dir also writes FunASR's
1best_recog/{text,token,timestamp} files and, with --format, one .json/.srt/.txt per input.
A bad input does not stop the run: the others are processed and every failure is listed at the
end (exit status 1)."""

EXAMPLES = """\
examples:
  funasr meeting.wav
  funasr --vad-model fsmn-vad meeting.wav
  funasr --model paraformer-zh --vad-model fsmn-vad --punc-model ct-punc meeting.wav \\
         --hotword "魔搭 达摩院" --output-dir out --format json,srt,txt
  funasr --model paraformer-zh --vad-model fsmn-vad recordings/ wav.scp -o out
  funasr --model ct-punc "今天天气不错我们去学习"
"""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(
        prog="funasr",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file, folder of audio files, or list file")
    p.add_argument("--model", help="ASR (or punctuation) model: name, hub id or local folder")
    p.add_argument("--vad-model", help=f"voice activity detector (default: {DEFAULT_VAD} when --model is not given; "
                   "alone, it reports speech segments)")
    p.add_argument("--punc-model", help="punctuation model for the ASR text (ct-punc, ct-punc-c, ...)")
    p.add_argument("--hub", default="hf", choices=["hf", "ms"], help="where model names are downloaded from (default: hf)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--init-param", help="weights to load instead of the --model folder's model.pt "
                   "(e.g. a funasr-train checkpoint such as exp/model.pt.avg10)")
    p.add_argument("--hotword", help='hotwords for SeACo / contextual models: "word1 word2" or a .txt file')
    p.add_argument("--lm-file", help="n-gram LM (ARPA or KenLM binary, e.g. from funasr-train-lm) for Paraformer models "
                   "(default: the model folder's lm.arpa.gz / lm.arpa / lm.bin when it has one)")
    p.add_argument("--lm-weight", type=float, help="weight of the LM's log-probabilities (default: the model's, else 0.3; "
                   "0: decode without the LM)")
    p.add_argument("--beam-size", type=int, help="beam of the LM search (default: the model's ngram_lm.beam_size, else 10)")
    p.add_argument("--batch-size-s", type=float, help="seconds of speech per ASR batch with a VAD (default: 300)")
    p.add_argument("-o", "--output-dir", help="write 1best_recog/{text,token,timestamp} (and --format files) here")
    p.add_argument("--format", default="", help=f"comma-separated per-input files in --output-dir: {','.join(FORMATS)}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no warnings")
    args = p.parse_args(argv)
    args.formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown:
        p.error(f"unknown --format {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if args.formats and not args.output_dir:
        p.error("--format needs --output-dir")
    if args.punc_model and not args.model:
        p.error("--punc-model punctuates ASR text: give the ASR model with --model")
    if args.init_param and not args.model:
        p.error("--init-param replaces the weights of --model: give the model with --model")
    if not args.model and not args.vad_model:
        args.model, args.vad_model, args.punc_model = DEFAULT_ASR, DEFAULT_VAD, DEFAULT_PUNC
    if args.batch_size_s is not None and not (args.model and args.vad_model):
        p.error("--batch-size-s batches the speech segments of a VAD for the ASR model: give both --model and --vad-model")
    return args


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """AutoModel keyword arguments for the chosen models."""
    kwargs: dict[str, Any] = {"hub": args.hub, "device": args.device}
    if args.model:
        kwargs["model"] = args.model
        if args.init_param:
            kwargs["init_param"] = args.init_param
        if args.vad_model:
            kwargs["vad_model"] = args.vad_model
        if args.punc_model:
            kwargs["punc_model"] = args.punc_model
    else:
        kwargs["model"] = args.vad_model
    return kwargs


def generate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """generate() keyword arguments for the chosen options."""
    kwargs: dict[str, Any] = {"disable_pbar": args.quiet}
    if args.hotword:
        kwargs["hotword"] = args.hotword
    kwargs.update({k: getattr(args, k) for k in ("lm_file", "lm_weight", "beam_size") if getattr(args, k) is not None})
    if args.batch_size_s is not None:
        kwargs["batch_size_s"] = args.batch_size_s
    if args.punc_model:
        kwargs["return_raw_text"] = True  # un-punctuated units for 1best_recog/token
        kwargs["sentence_timestamp"] = True  # sentences for SRT and JSON
    return kwargs


def expand_inputs(inputs: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Folders replaced by the audio files inside; returns (inputs, failures)."""
    out: list[str] = []
    failures: list[tuple[str, str]] = []
    for value in inputs:
        if not value.strip():
            failures.append((value, "an empty path; pass an audio file, folder or list file"))
            continue
        path = Path(value)
        if not path.is_dir():
            out.append(value)
            continue
        found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not found:
            failures.append((value, f"folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})"))
        out.extend(found)
    return out, failures


def _describe(error: BaseException) -> str:
    from funasr.errors import FunASRError

    return str(error) if isinstance(error, FunASRError) else f"{type(error).__name__}: {error}"


def _summary_line(result: dict[str, Any]) -> str:
    if "value" in result:
        return f"{result.get('key', '')}\t{result['value']}"
    return f"{result.get('key', '')}\t{result.get('text', '')}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``funasr`` / ``python -m funasr``; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="funasr: %(levelname)s: %(message)s")
    from tqdm import tqdm

    from funasr.auto_model import AutoModel

    try:
        check_output_dir(args.output_dir)
        model = AutoModel(**model_kwargs(args))
        options = model.options(generate_kwargs(args))
    except Exception as e:  # a model that cannot be found or built, or a bad option, ends the run with its reason
        log.debug("start-up failed", exc_info=True)
        print(f"funasr: error: {_describe(e)}", file=sys.stderr)
        return 1
    values, failures = (list(args.inputs), []) if model.kind == "punc" else expand_inputs(args.inputs)
    sources, _ = model.sources(values)
    try:
        with OutputWriter(args.output_dir, args.formats) if args.output_dir else nullcontext() as writer:
            for result in model.results(sources, False, options):
                if "error" in result:
                    failures.append((str(result.get("key")), str(result["error"])))
                    continue
                tqdm.write(_summary_line(result), file=sys.stdout)
                if args.output_dir:
                    writer.write(result)
    except Exception as e:
        log.debug("run failed", exc_info=True)
        print(f"funasr: error: {_describe(e)}", file=sys.stderr)
        return 1
    if writer is not None and writer.failed:  # e.g. a full disk: the transcripts went to stdout, the files stop there
        print(f"funasr: error: {writer.failed}", file=sys.stderr)
        return 1
    if failures:
        print(f"funasr: {len(failures)} input(s) failed:", file=sys.stderr)
        for value, reason in failures:
            print(f"  {value}: {reason}", file=sys.stderr)
        return 1
    return 0
