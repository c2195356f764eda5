"""Exports that sherpa-onnx loads: Paraformer (offline and streaming) and CT-Transformer punctuation.

sherpa-onnx reads its settings from ONNX metadata and its vocabulary from ``tokens.txt``
(``symbol id`` per line). Files and what sherpa-onnx calls them with:

- Paraformer, BiCifParaformer -> ``model.onnx`` (``model.int8.onnx``) + ``tokens.txt``:
  ``OfflineRecognizer.from_paraformer(paraformer=..., tokens=...)``; the graph is funasr_onnx's,
  sherpa-onnx computes the fbank, LFR and CMVN from the metadata as FunASR's frontend does.
- ParaformerStreaming -> ``encoder.onnx`` / ``decoder.onnx`` (``*.int8.onnx``) + ``tokens.txt``:
  ``OnlineRecognizer.from_paraformer(encoder=..., decoder=..., tokens=...)``; the graphs are the
  funasr_onnx streaming ones (FunASR's online contract), with sherpa's metadata on the encoder.
- CTTransformer -> ``model.onnx`` (``model.int8.onnx``), tokens and punctuation in the metadata:
  ``OfflinePunctuation`` with ``OfflinePunctuationModelConfig(ct_transformer=...)``.

sherpa-onnx has no FSMN-VAD (its VAD takes Silero or TEN-VAD models) and its online punctuation
is a different model, so FsmnVAD and CTTransformerStreaming are not exported for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from funasr.errors import ExportError
from funasr.export.graph import ExportGraph
from funasr.tokenizer import read_token_list

OFFLINE_ASR = ("Paraformer", "BiCifParaformer")
STREAMING_ASR = ("ParaformerStreaming",)
PUNCTUATION = ("CTTransformer",)
SUPPORTED = OFFLINE_ASR + STREAMING_ASR + PUNCTUATION
INT8_SUFFIX = ".int8.onnx"


def check_sherpa_model(model: str) -> None:
    """Raise ExportError when sherpa-onnx cannot run config model ``model``."""
    if model not in SUPPORTED:
        raise ExportError(
            f"type='sherpa-onnx' cannot export {model}: sherpa-onnx runs {', '.join(SUPPORTED)} "
            "(it has no FSMN-VAD, hotword Paraformer or streaming CT-Transformer); use type='onnx' for funasr_onnx"
        )


def write_tokens(tokens: list[str], path: Path) -> None:
    """``tokens.txt``: ``symbol id`` per line, as sherpa-onnx's symbol table reads it."""
    path.write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")


def add_metadata(path: Path, meta: dict[str, Any]) -> None:
    """Set ONNX metadata entries (values as strings; float vectors comma-separated) in place."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        if isinstance(value, (np.ndarray, list, tuple)):
            value = ",".join(repr(float(v)) for v in value)
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, str(path))


def token_list(task: Any) -> list[str]:
    """The model's tokens, in id order."""
    tokens = (task.cfg.get("tokenizer_conf") or {}).get("token_list")
    return list(tokens) if isinstance(tokens, list) else read_token_list(tokens)


def lfr_meta(task: Any, vocab_size: int) -> dict[str, Any]:
    """The metadata both Paraformer recognizers read."""
    fe = task.frontend
    return {"vocab_size": vocab_size, "lfr_window_size": fe.lfr_m, "lfr_window_shift": fe.lfr_n}


def cmvn_meta(task: Any) -> dict[str, Any]:
    """``neg_mean`` / ``inv_stddev``: am.mvn's ``<AddShift>`` (the negated mean) and ``<Rescale>``."""
    fe = task.frontend
    shift, scale = fe.cmvn
    return {"neg_mean": shift[: fe.output_size()], "inv_stddev": scale[: fe.output_size()]}


def offline_graphs(task: Any, graphs: list[ExportGraph]) -> dict[str, tuple[ExportGraph, dict[str, Any]]]:
    """``model``: the funasr_onnx Paraformer graph with sherpa-onnx's frontend metadata."""
    (main,) = [g for g in graphs if g.name == "model"]
    meta = {**lfr_meta(task, len(token_list(task))), **cmvn_meta(task), "model_type": "paraformer"}
    return {"model": (main, meta)}


def streaming_graphs(task: Any, graphs: list[ExportGraph]) -> dict[str, tuple[ExportGraph, dict[str, Any]]]:
    """``encoder`` (with the metadata: LFR, CMVN, sizes of the decoder caches) and ``decoder``."""
    module = task.net.module
    by_name = {g.name: g for g in graphs}
    meta = {
        **lfr_meta(task, len(token_list(task))),
        "encoder_output_size": module.encoder.output_size(),
        "decoder_num_blocks": len(module.decoder.decoders),
        "decoder_kernel_size": module.history_size + 1,
        **cmvn_meta(task),
        "model_type": "paraformer",
    }
    return {"encoder": (by_name["model"], meta), "decoder": (by_name["decoder"], {})}


def punctuation_graphs(task: Any, graphs: list[ExportGraph]) -> dict[str, tuple[ExportGraph, dict[str, Any]]]:
    """``model``: the CT-Transformer graph; tokens, punctuation marks and the unknown symbol in the metadata."""
    tokens = token_list(task)
    unk = (task.cfg.get("tokenizer_conf") or {}).get("unk_symbol", "<unk>")
    meta = {"model_type": "ct_transformer", "vocab_size": len(tokens), "tokens": "|".join(tokens),
            "punctuations": "|".join(task.punc_list), "unk_symbol": unk}
    return {"model": (graphs[0], meta)}


WRITERS: dict[tuple[str, ...], Callable[[Any, list[ExportGraph]], dict[str, tuple[ExportGraph, dict[str, Any]]]]] = {
    OFFLINE_ASR: offline_graphs,
    STREAMING_ASR: streaming_graphs,
    PUNCTUATION: punctuation_graphs,
}


def export_sherpa(task: Any, out: Path, quantize: bool, weight_type: str, opset_version: int, graphs: list[ExportGraph]) -> None:
    """Write ``task``'s sherpa-onnx files into the existing folder ``out`` (``graphs``: the family's export graphs)."""
    from funasr import registry
    from funasr.export.onnx import export_onnx
    from funasr.export.quantize import quantize_onnx

    model = task.cfg["model"]
    check_sherpa_model(model)
    writer = next(w for names, w in WRITERS.items() if model in names)
    exclude = registry.family_of(model).quantize_exclude
    with torch.no_grad():
        for name, (graph, meta) in writer(task, graphs).items():
            paths = [export_onnx(graph, out / f"{name}.onnx", opset_version)]
            if quantize:
                paths.append(quantize_onnx(paths[0], out / f"{name}{INT8_SUFFIX}", weight_type, exclude))
            for path in paths if meta else ():
                add_metadata(path, meta)
    if model not in PUNCTUATION:
        write_tokens(token_list(task), out / "tokens.txt")
