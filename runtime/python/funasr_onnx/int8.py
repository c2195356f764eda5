"""Run int8 graphs (MatMulInteger, as ``quantize_dynamic`` writes them) on each x86 CPU's fastest exact kernels.

onnxruntime multiplies uint8 activations by int8 weights with fast kernels and uint8 by uint8
with generic ones, which is what FunASR's uint8-weight files get. Which int8 weights are exact
depends on the CPU (/proc/cpuinfo flags, read once at load):

- VNNI / AMX (``avx512_vnni``, ``avx_vnni``, ``amx_int8``): u8 x s8 products add up in 32 bits.
  A uint8 weight ``w`` with zero point ``z`` stands for ``w - z``, which is also
  ``(w - 128) - (z - 128)``: both are shifted to int8, every integer product and output is the
  same as the file's, and the MatMuls run several times faster ("shift").
- Other x86 CPUs (AVX2, AVX-512 without VNNI): the u8 x s8 kernels add pairs of products in
  16 bits and saturate when ``|w1| + |w2| > 128`` (a uint8 activation is up to 255). Each weight
  column is re-quantised to int8 within [-64, 64] (7 bits, what ``reduce_range`` gives), its
  scale multiplied to match: no pair can saturate, at the cost of one bit of weight precision
  ("narrow"). Checked with benchmarks/int8_kernels.py on an AVX2-only AMD EPYC and an emulated Haswell.
- Other CPUs (ARM: dot-product instructions take uint8 as they are): the file as it is ("keep").

``FUNASR_ONNX_INT8=keep`` in the environment runs the file as it is on every CPU: the same integers
as other onnxruntime programs on that file (FunASR's runtimes, sherpa-onnx), slower on x86.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import numpy as np

from funasr.errors import OptionError

log = logging.getLogger(__name__)

# /proc/cpuinfo flags of x86 CPUs whose uint8 x int8 dot products accumulate in 32 bits.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
NARROW_LIMIT = 64  # |int8 weight| at most this: 255 * (64 + 64) fits in int16
PLAN_VARIABLE = "FUNASR_ONNX_INT8"  # "keep": the file's weights on every CPU; "auto" or unset: int8_plan decides
REWRITE_VERSION = 1  # part of the cache key: raise it when the rewrites change


@lru_cache(maxsize=None)
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> Optional[frozenset]:
    """The flags of an x86 CPU (from ``cpuinfo``, Linux), or None on other CPUs or where they cannot be read."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.is_file():
        return None
    return frozenset(next((line.split(":", 1)[1].split() for line in cpuinfo.open() if line.startswith("flags")), []))


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this x86 CPU has AVX512-VNNI, AVX-VNNI or AMX-INT8 (read from ``cpuinfo``, Linux only)."""
    return any(f in (cpu_flags(cpuinfo) or ()) for f in VNNI_FLAGS)


def int8_plan(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """How this CPU runs int8 weights: ``"shift"`` (VNNI / AMX), ``"narrow"`` (other x86) or ``"keep"`` (others, or
    ``FUNASR_ONNX_INT8=keep``)."""
    chosen = os.environ.get(PLAN_VARIABLE, "").strip().lower()
    if chosen not in ("", "auto", "keep"):
        raise OptionError(f"{PLAN_VARIABLE}={os.environ[PLAN_VARIABLE]!r}: use 'keep' (the file's int8 weights as they are) "
                         "or 'auto' (weights rewritten for this CPU's fastest exact kernels; the default)")
    flags = cpu_flags(cpuinfo)
    if flags is None or chosen == "keep":
        return "keep"
    return "shift" if any(f in flags for f in VNNI_FLAGS) else "narrow"


def _weights(model: Any) -> list[tuple[Any, Any, Any]]:
    """``(node, weight, zero point)`` initializers of each MatMulInteger whose weight side no other node reads."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for name in [o.name for o in graph.output] + [i.name for i in graph.input]:
        uses[name] = uses.get(name, 0) + 1
    out = []
    for node in graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 4:
            continue
        names = (node.input[1], node.input[3])
        if all(n in inits and uses[n] == 1 for n in names):
            out.append((node, inits[names[0]], inits[names[1]]))
    return out


def signed_weights(model: Any) -> int:
    """Shift the uint8 weights and zero points of ``model``'s MatMulInteger nodes to int8, in place; returns how many."""
    from onnx import TensorProto, numpy_helper

    done = 0
    for _, weight, zero in _weights(model):
        if weight.data_type != TensorProto.UINT8 or zero.data_type != TensorProto.UINT8:
            continue  # int8 already
        for init in (weight, zero):
            shifted = numpy_helper.to_array(init).astype(np.int16) - 128
            init.CopyFrom(numpy_helper.from_array(shifted.astype(np.int8), init.name))
        done += 1
    return done


def _weight_scale(node: Any, columns: int, inits: dict[str, Any], readers: dict[str, list[Any]],
                  producer: dict[str, Any]) -> Optional[Any]:
    """The initializer holding the per-column (or single) scale of ``node``'s weight: MatMulInteger -> Cast ->
    Mul(·, Mul(activation scale, weight scale)), as ``quantize_dynamic`` writes it; None for another layout."""
    cast = readers.get(node.output[0], [])
    if len(cast) != 1 or cast[0].op_type != "Cast":
        return None
    mul = readers.get(cast[0].output[0], [])
    if len(mul) != 1 or mul[0].op_type != "Mul":
        return None
    other = [i for i in mul[0].input if i != cast[0].output[0]]
    scales = producer.get(other[0]) if len(other) == 1 else None
    if scales is None or scales.op_type != "Mul":
        return None
    found = [inits[i] for i in scales.input if i in inits and len(readers[i]) == 1]
    if len(found) != 1 or int(np.prod(found[0].dims)) not in (1, columns):
        return None
    return found[0]


def narrow_weights(model: Any) -> int:
    """Re-quantise ``model``'s MatMulInteger weights to int8 within [-64, 64] per column, scales adjusted, in place.

    Columns already within range keep their integers (shifted to zero point 0). Returns how many MatMuls changed.
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for n in graph.node:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    done = 0
    for node, weight, zero in _weights(model):
        w = numpy_helper.to_array(weight).astype(np.int32)  # (K, N)
        if w.ndim != 2:
            continue
        scale_init = _weight_scale(node, w.shape[1], inits, readers, producer)
        if scale_init is None:
            continue
        centred = w - numpy_helper.to_array(zero).astype(np.int32)  # zero point: per column (N,) or one
        peak = np.abs(centred).max(axis=0)  # (N,)
        scale = numpy_helper.to_array(scale_init).astype(np.float32)
        if scale.size == 1:  # one scale for the whole weight: one factor too
            peak = np.full_like(peak, peak.max())
        factor = np.maximum(peak, NARROW_LIMIT) / NARROW_LIMIT  # (N,) >= 1: 1 where the column fits already
        narrowed = np.round(centred / factor).astype(np.int8)
        new_scale = (scale * (factor if scale.size > 1 else factor[:1])).astype(np.float32).reshape(scale.shape)
        weight.CopyFrom(numpy_helper.from_array(narrowed, weight.name))
        zero.CopyFrom(numpy_helper.from_array(np.zeros(numpy_helper.to_array(zero).shape, np.int8), zero.name))
        scale_init.CopyFrom(numpy_helper.from_array(new_scale, scale_init.name))
        done += 1
    return done


def session_source(path: Path, on_cpu: bool, plan: Optional[str] = None) -> str:
    """The file to open for ``path``: itself, or a copy with int8 weights fit for this CPU's kernels (``int8_plan``).

    The copy is written once to the cache folder (``$FUNASR_ONNX_CACHE``, else ``~/.cache/funasr_onnx``),
    keyed by the file's path, size, time and the plan, so later loads read it like any file (a model
    rewritten in memory and opened from bytes holds three copies at once: ~700 MB for Paraformer-large).
    """
    plan = plan or int8_plan()
    if not on_cpu or plan == "keep":
        return str(path)
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{plan}|{REWRITE_VERSION}".encode()).hexdigest()
    cached = Path(os.environ.get("FUNASR_ONNX_CACHE") or Path.home() / ".cache" / "funasr_onnx") / f"{path.stem}.{plan}.{key[:16]}.onnx"
    if cached.is_file():
        return str(cached)
    import onnx

    model = onnx.load(str(path))
    count = signed_weights(model) if plan == "shift" else narrow_weights(model)
    if not count:
        return str(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.part")
        onnx.save(model, str(partial))
        os.replace(partial, cached)
    except OSError as e:
        log.warning("cannot write the int8 copy of %s to %s (%s): using the file as it is", path, cached.parent, e)
        return str(path)
    log.info("%s: %d MatMul weights %s for this CPU's u8 x s8 kernels (%s)", path.name, count,
             "shifted to int8" if plan == "shift" else "re-quantised to 7-bit int8", cached)
    return str(cached)
