"""Which ASR inputs go through the network together, on the CPU it runs on (torch-free).

One call on many segments reads the weights once and multiplies bigger matrices, but pads
every segment to the batch's longest, pays attention for T² frames per segment, and past
the CPU's caches slows every frame. A ``CostModel`` of the loaded model (a short calibration
on it, once per machine per network size, engine and thread count, kept in
``$FUNASR_CACHE/planner.json``; the frame cap from the cache size and thread count) predicts
the seconds of a batch; ``plan_batches`` splits the length-sorted inputs into the batches
with the least predicted time, within the user's ``batch_size_s``. Every batch of such a
plan is predicted no slower than its inputs one by one (else splitting it would be cheaper).
On a GPU there is no cost model: the largest batches ``batch_size_s`` allows.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

CALIBRATION_FRAMES = 12  # frames of the calibration's short input (0.7 s at 60 ms per frame)
CALIBRATION_BATCH = 6  # the calibration's batch of short inputs, and its long input is this many short ones
LIVE_BUFFERS = 4  # activations of the widest layer alive at once, per frame, that should stay in cache
DEFAULT_CACHE = 8 << 20  # bytes, where the OS does not tell
SYS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
CALIBRATION_VERSION = 1  # bump when calibrate() changes: older calibrations on disk are then ignored


@dataclass(frozen=True)
class CostModel:
    """Predicted seconds of one network call on ``count`` inputs padded to ``frames`` feature frames."""

    call_s: float  # per call (weights read, per-call work)
    frame_s: float  # per padded frame
    pair_s: float  # per padded frame and frame of its length (attention's T²)
    max_frames: int  # padded frames per batch the caches hold (one long input may exceed it)
    frame_ms: float  # milliseconds of audio per feature frame

    def frames(self, ms: float) -> int:
        """Feature frames of ``ms`` milliseconds of audio."""
        return max(1, math.ceil(ms / self.frame_ms))

    def cost(self, count: int, frames: int) -> float:
        """Seconds of a call on ``count`` inputs padded to ``frames`` frames."""
        return self.call_s + count * frames * (self.frame_s + frames * self.pair_s)


def pack_batches(durations: list[int], budget_ms: float, threshold_ms: float) -> Iterator[list[int]]:
    """Indices of inputs sorted by length, packed greedily so each batch's padded length stays within budget."""
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    batch: list[int] = []
    for i in order:
        longest = durations[i]  # ascending order: the newcomer is the longest
        if batch and (longest * (len(batch) + 1) > budget_ms or longest >= threshold_ms):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def plan_batches(durations: list[int], budget_ms: float, threshold_ms: float, model: Optional[CostModel]) -> list[list[int]]:
    """Batches of input indices (milliseconds each): least predicted time under ``model``, greedy packing without one.

    A batch holds at most ``budget_ms`` of padded audio (count × longest) and ``model.max_frames``
    padded frames; an input of ``threshold_ms`` or more runs alone. Inputs are taken in length
    order (the shortest padding), the split into batches is the cheapest one (dynamic programming).
    """
    if model is None:
        return list(pack_batches(durations, budget_ms, threshold_ms))
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    best = [0.0] + [math.inf] * len(order)  # best[j]: least seconds for the j shortest inputs
    cut = [0] * (len(order) + 1)  # the last batch of that best split starts here
    for j in range(1, len(order) + 1):
        longest = durations[order[j - 1]]
        frames = model.frames(longest)
        for i in range(j - 1, -1, -1):
            count = j - i
            if count > 1 and (longest * count > budget_ms or longest >= threshold_ms or frames * count > model.max_frames):
                break  # only grows as i goes down
            total = best[i] + model.cost(count, frames)
            if total < best[j]:
                best[j], cut[j] = total, i
    batches, j = [], len(order)
    while j:
        batches.append(order[cut[j] : j])
        j = cut[j]
    return batches[::-1]


def plan_for(task: Any, durations: list[int], budget_ms: float = math.inf, threshold_ms: float = math.inf) -> list[list[int]]:
    """``plan_batches`` for ``task``'s network (calibrated on first use, only when some batch could hold two inputs)."""
    greedy = list(pack_batches(durations, budget_ms, threshold_ms))
    if all(len(b) == 1 for b in greedy) or getattr(task, "streaming", False):
        return greedy
    return plan_batches(durations, budget_ms, threshold_ms, cost_model(task))


ONE_AT_A_TIME = CostModel(call_s=0.0, frame_s=1.0, pair_s=0.0, max_frames=0, frame_ms=1.0)  # no batch fits
_MODELS: dict[tuple, Optional[CostModel]] = {}
_LOCK = threading.Lock()


def cost_model(task: Any) -> Optional[CostModel]:
    """The ``CostModel`` of ``task``'s network on this CPU: calibrated once per machine per network size, engine and
    thread count (kept on disk, see ``calibrations_file``); None on a GPU (large batches) or for a network without
    ``recognize``; ``ONE_AT_A_TIME`` where batching would change results."""
    net = getattr(task, "net", None)
    if not hasattr(net, "recognize"):
        return None
    gpu, key = placement(net)
    if gpu:
        return None
    if rows_interact(net):
        return ONE_AT_A_TIME
    key = (str(task.cfg.get("model_dir")), *key)
    with _LOCK:  # one calibration at a time: two at once would time each other
        if key not in _MODELS:
            width = widest_layer(task.cfg)
            disk_key = json.dumps([CALIBRATION_VERSION, cpu_name(), cache_bytes(key[-1]), network_size(net), *key[1:]])
            _MODELS[key] = load_calibration(disk_key)
            if _MODELS[key] is None:
                bias = task.hotword_bias(None) if hasattr(task, "hotword_bias") else None  # what a call without hotwords uses
                _MODELS[key] = calibrate(net, bias, task.frontend.output_size(), frame_ms(task.frontend), key[-1], width)
                save_calibration(disk_key, _MODELS[key])
        return _MODELS[key]


def calibrations_file() -> Path:
    """Where calibrations are kept: ``$FUNASR_CACHE/planner.json`` (default ``~/.cache/funasr``)."""
    return Path(os.environ.get("FUNASR_CACHE") or Path.home() / ".cache" / "funasr") / "planner.json"


def _read_calibrations() -> dict:
    try:
        data = json.loads(calibrations_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_calibration(disk_key: str) -> Optional[CostModel]:
    """A calibration kept on disk under ``disk_key``, or None (none, unreadable or of another shape)."""
    try:
        return CostModel(**_read_calibrations()[disk_key])
    except (KeyError, TypeError):
        return None


def save_calibration(disk_key: str, model: CostModel) -> None:
    """Keep ``model`` on disk under ``disk_key`` (atomically; a read-only cache only costs the next calibration)."""
    path = calibrations_file()
    data = {**_read_calibrations(), disk_key: asdict(model)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass


def cpu_name() -> str:
    """The CPU's model name (what a calibration on disk is valid for, with the caches and thread count)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def network_size(net: Any) -> list:
    """What the network's speed depends on besides the engine: its class, parameter count and dtype (or graph file size)."""
    module = getattr(net, "module", None)
    if module is not None and hasattr(module, "parameters"):
        params = list(module.parameters())
        return [type(module).__name__, sum(p.numel() for p in params), str(params[0].dtype) if params else ""]
    path = getattr(getattr(net, "graph", None), "path", None)
    size = Path(path).stat().st_size if path is not None and Path(path).is_file() else 0
    return [type(net).__name__, size]


def concurrent_runs(task: Any) -> int:
    """How many one-input runs of ``task`` go at once: 2 for an onnxruntime graph on the CPU with 2 threads or more, else 1.

    One segment at a time leaves cores idle between and inside small ops (10-minute int8 pipeline, 2 threads: ASR
    9.4 s one by one, 7.2-8.1 s two at a time). Each input is still decoded alone, so results do not change.
    PyTorch runs share one global thread pool and stay one at a time.
    """
    gpu, key = placement(getattr(task, "net", None))
    return 2 if not gpu and key[0] == "onnx" and key[-1] >= 2 else 1


def rows_interact(net: Any) -> bool:
    """Whether a batch's inputs change each other's results: int8 graphs quantize activations with one scale per batch."""
    return str(getattr(getattr(net, "graph", None), "path", "")).endswith("_quant.onnx")


def placement(net: Any) -> tuple[bool, tuple]:
    """(whether ``net`` runs on a GPU, what its speed depends on: engine, device or graph file, threads)."""
    device = getattr(net, "device", None)
    if device is not None:  # a PyTorch engine: torch is loaded
        return device.type != "cpu", ("torch", str(device), sys.modules["torch"].get_num_threads())
    graph = getattr(net, "graph", None)
    session = getattr(graph, "session", None)
    if session is not None:  # an onnxruntime engine
        gpu = session.get_providers()[0] != "CPUExecutionProvider"
        return gpu, ("onnx", str(graph.path), session.get_session_options().intra_op_num_threads or 1)
    return False, (type(net).__name__, 1)


def frame_ms(frontend: Any) -> float:
    """Milliseconds of audio per output frame of ``frontend`` (frame shift × LFR step)."""
    return float(getattr(frontend, "frame_shift", 10)) * int(getattr(frontend, "lfr_n", 1))


def widest_layer(cfg: dict) -> int:
    """Widest per-frame activation of the model (feed-forward units or model width)."""
    sizes = [int(v) for part in ("encoder_conf", "decoder_conf") for k, v in (cfg.get(part) or {}).items()
             if k in ("linear_units", "output_size", "attention_dim") and isinstance(v, int)]
    return max(sizes, default=2048)


def cache_bytes(threads: int) -> int:
    """Cache the ``threads`` threads can use: the last level, plus the per-core levels below it for each thread."""
    levels: dict[int, int] = {}
    for index in sorted(SYS_CACHE.glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level, size = int((index / "level").read_text()), (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        unit = {"K": 10, "M": 20, "G": 30}.get(size[-1])
        levels[level] = int(size[:-1]) << unit if unit else int(size)
    if not levels:
        return DEFAULT_CACHE
    top = max(levels)
    return levels[top] + threads * levels.get(top - 1, 0)


def calibrate(net: Any, bias: Any, feat_dim: int, ms_per_frame: float, threads: int, width: int) -> CostModel:
    """Time ``net.recognize`` on a short input, a batch of short ones and one long one (best of two): a ``CostModel``."""
    rng = np.random.default_rng(0)
    short, k = CALIBRATION_FRAMES, CALIBRATION_BATCH

    def timed(count: int, frames: int) -> float:
        feats = rng.standard_normal((count, frames, feat_dim), dtype=np.float32)
        start = time.perf_counter()
        net.recognize(feats, np.full(count, frames, dtype=np.int64), bias=bias)
        return time.perf_counter() - start

    timed(1, short)  # warm-up (first-call allocations)
    shapes = [(1, short), (k, short), (1, k * short)]
    one, many, long = (min(pair) for pair in zip(*[[timed(*s) for s in shapes] for _ in range(2)]))
    pair_s = max((long - many) / (k * (k - 1) * short * short), 0.0)  # same padded frames, k× longer attention
    frame_s = max((many - one) / ((k - 1) * short) - short * pair_s, 1e-9)
    call_s = max(one - short * (frame_s + short * pair_s), 0.0)
    max_frames = max(cache_bytes(threads) // (4 * width * LIVE_BUFFERS), 1)
    return CostModel(call_s, frame_s, pair_s, max_frames, ms_per_frame)
