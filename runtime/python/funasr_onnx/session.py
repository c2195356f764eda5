"""onnxruntime sessions over exported graphs (which file, how many threads, which device) and the engines over them."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import onnxruntime as ort

from funasr.config import resolve_model_dir
from funasr.errors import CheckpointError, ConfigError, ModelNotFoundError, OptionError
from funasr.hub import resolve_model
from funasr.registry import families, resolve
from funasr.tasks import frontend_and_tokenizer
from funasr_onnx.int8 import int8_plan, session_source

log = logging.getLogger(__name__)

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class SessionConfig:
    """How graphs are run: int8 files or not, threads, device, or your own ``onnxruntime.SessionOptions``.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (needs onnxruntime-gpu; falls back to
    the CPU with a warning). ``quantize`` runs FunASR's uint8 weights as int8 on x86 CPUs: the same
    results on VNNI / AMX, 7-bit weights elsewhere (int8.py; ``FUNASR_ONNX_INT8=keep``: the file as
    it is). ``session_options``, when given, is used as is (its thread settings win over
    ``intra_op_num_threads`` / ``inter_op_num_threads``).
    """

    quantize: bool = False
    intra_op_num_threads: int = 4
    inter_op_num_threads: int = 1
    device: str = "cpu"
    session_options: Optional[ort.SessionOptions] = None

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise OptionError(f"device={self.device!r} is not allowed: pass 'cpu', 'cuda' or 'cuda:N' (N = GPU index)")
        if self.quantize:
            int8_plan()  # a wrong FUNASR_ONNX_INT8 is refused before any graph loads

    def options(self) -> ort.SessionOptions:
        """The session options every graph of a model gets."""
        if self.session_options is not None:
            return self.session_options
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = int(self.intra_op_num_threads)
        opts.inter_op_num_threads = int(self.inter_op_num_threads)
        opts.log_severity_level = 3
        # Idle intra-op threads would spin-wait for the next op. A model runs several graphs in turn
        # (streaming encoder and decoder, a pipeline's VAD, ASR and punctuation), each with its own
        # pool, and the spinning pool of the graph just run takes the cores of the one running:
        # 2 threads were 2x slower per streaming chunk than 1 (docs/benchmarks.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    def providers(self) -> list[Any]:
        """Execution providers for ``device``."""
        if not self.device.startswith("cuda"):
            return ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            log.warning("device %r asked for, but this onnxruntime has no CUDA provider: running on the CPU", self.device)
            return ["CPUExecutionProvider"]
        index = int(self.device.split(":")[1]) if ":" in self.device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


class Graph:
    """One exported graph; calls are safe from several threads (onnxruntime runs are)."""

    def __init__(self, path: Path, config: SessionConfig) -> None:
        self.path = path
        providers = config.providers()
        try:
            source = session_source(path, on_cpu=providers == ["CPUExecutionProvider"]) if config.quantize else str(path)
            self.session = ort.InferenceSession(source, sess_options=config.options(), providers=providers)
        except Exception as e:  # onnxruntime's InvalidProtobuf / InvalidGraph / Fail, onnx's DecodeError
            raise CheckpointError(
                f"cannot load the graph {path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no details'}); "
                f"the file is damaged or incomplete: export the model again (funasr-export --model ...)"
            ) from e
        release_freed_heap()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_shapes = {i.name: i.shape for i in self.session.get_inputs()}  # dynamic axes by name

    def __call__(self, **feed: np.ndarray) -> list[np.ndarray]:
        """Run with inputs by name; outputs in the graph's order."""
        return self.session.run(None, feed)


def release_freed_heap() -> bool:
    """Return the heap that loading freed to the OS (glibc keeps it); False where there is no glibc.

    onnxruntime parses a graph file into memory and builds its tensors from that copy, then frees the
    copy: glibc keeps most of those pages for later allocations, so a process that loaded a 237 MB int8
    graph stayed ~130 MiB larger than it needed to be (docs/benchmarks.md).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ldconfig); None without glibc."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


def model_config(model: Union[str, Path], hub: str = "hf", **overrides: Any) -> dict[str, Any]:
    """Resolve a model name or folder to its config (absolute file paths), as funasr does."""
    return resolve_model_dir(resolve_model(str(model), hub=hub), overrides)


def exported_parts(
    model_dir: Union[str, Path],
    kind: Optional[str] = None,
    quantize: bool = False,
    intra_op_num_threads: int = 4,
    inter_op_num_threads: int = 1,
    device: str = "cpu",
    session_options: Optional[ort.SessionOptions] = None,
    hub: str = "hf",
    **overrides: Any,
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(engine, frontend, tokenizer, cfg)`` of an exported model folder: a task's arguments.

    The family of the config's ``model:`` names the onnxruntime engine; ``kind`` (``asr``,
    ``vad``, ``punc``), when given, is the task the model must serve. ``quantize`` picks the
    ``*_quant.onnx`` files; the other settings are SessionConfig's; further keyword arguments
    override config entries, as in funasr.
    """
    config = SessionConfig(quantize, intra_op_num_threads, inter_op_num_threads, device, session_options)
    cfg = model_config(model_dir, hub, **overrides)
    name = cfg.get("model")
    runs = sorted(m for f in families() if f.onnx_engine for m in f.models)
    family = next((f for f in families() if name in f.models and f.onnx_engine), None)
    if family is None:
        raise ConfigError(f"{model_dir} holds a {name} model, which funasr_onnx does not run; it runs {', '.join(runs)}")
    if kind is not None and resolve(family.task).kind != kind:
        raise ConfigError(f"{model_dir} holds a {name} model (a {resolve(family.task).kind} model), not a {kind} model")
    engine = resolve(family.onnx_engine)(lambda graph: load_graph(cfg, graph, config), cfg)
    frontend, tokenizer = frontend_and_tokenizer(cfg)
    return engine, frontend, tokenizer, cfg


def load_graph(cfg: dict[str, Any], name: str, config: SessionConfig) -> Graph:
    """``<name>.onnx`` (or ``<name>_quant.onnx`` when quantized) of the model folder."""
    folder = Path(cfg["model_dir"])
    path = folder / (f"{name}_quant.onnx" if config.quantize else f"{name}.onnx")
    if not path.is_file():
        flag = " --quantize" if config.quantize else ""
        raise ModelNotFoundError(
            f"{path.name} is not in {folder}; export the model first (needs torch): "
            f"funasr-export --model {folder} --type onnx{flag}"
        )
    return Graph(path, config)
