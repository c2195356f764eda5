"""Run FunASR's int8 graphs (uint8 MatMul weights) on onnxruntime's fast uint8 x int8 kernels, with the same results.

FunASR quantises MatMul weights to uint8, and onnxruntime multiplies uint8 activations by
uint8 weights with generic kernels; its VNNI / AMX kernels take int8 weights. A uint8 weight
``w`` with zero point ``z`` stands for ``w - z``, which is also ``(w - 128) - (z - 128)``:
storing both shifted as int8 leaves every integer product, and so every output, unchanged,
and the MatMuls run several times faster (docs/benchmarks.md). CPUs without VNNI add uint8
x int8 pairs in 16 bits, which can saturate (onnxruntime's quantisation notes), so the
graph is only rewritten where the CPU has VNNI or AMX.
"""
from __future__ import annotations

import logging
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np

log = logging.getLogger(__name__)

# /proc/cpuinfo flags of x86 CPUs whose uint8 x int8 dot products accumulate in 32 bits.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@lru_cache(maxsize=None)
def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this x86 CPU has AVX512-VNNI, AVX-VNNI or AMX-INT8 (read from ``cpuinfo``, Linux only)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.is_file():
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.open() if line.startswith("flags")), [])
    return any(f in flags for f in VNNI_FLAGS)


def signed_weights(model: Any) -> int:
    """Shift the uint8 weights and zero points of ``model``'s MatMulInteger nodes to int8, in place; returns how many."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for name in [o.name for o in graph.output] + [i.name for i in graph.input]:
        uses[name] = uses.get(name, 0) + 1
    done = 0
    for node in graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 4:
            continue
        names = (node.input[1], node.input[3])
        if not all(n in inits and inits[n].data_type == TensorProto.UINT8 and uses[n] == 1 for n in names):
            continue  # activations, int8 already, or a weight another node also reads
        for name in names:
            shifted = numpy_helper.to_array(inits[name]).astype(np.int16) - 128
            inits[name].CopyFrom(numpy_helper.from_array(shifted.astype(np.int8), name))
        done += 1
    return done


def session_source(path: Path, on_cpu: bool) -> Union[str, bytes]:
    """What to open ``path`` from: the file, or its bytes with signed int8 weights when that is exact and faster here."""
    if not on_cpu or not cpu_has_vnni():
        return str(path)
    import onnx

    model = onnx.load(str(path))
    count = signed_weights(model)
    if not count:
        return str(path)
    log.info("%s: %d uint8 MatMul weights shifted to int8 for this CPU's VNNI kernels", path.name, count)
    return model.SerializeToString()
