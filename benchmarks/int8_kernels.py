"""Which int8 MatMul weights onnxruntime runs exactly, and how fast, on this CPU.

Runs one MatMulInteger, uint8 activations (large values: the worst case) times a (512, 2048)
weight, in three forms: uint8 weights (FunASR's files: generic u8 x u8 kernels), int8 weights
over the full range (the "shift" form funasr_onnx uses on VNNI / AMX CPUs) and int8 weights
within [-64, 64] (the "narrow" form it uses on other x86 CPUs), against the exact integer
product, with the time of each (1 thread, best of 20), and a float32 MatMul of the same shape for
scale. To see a CPU without VNNI on one that has it, run it under an emulated one (timings are then
meaningless, exactness is not):

    python benchmarks/int8_kernels.py
    qemu-x86_64 -cpu Haswell "$(python3 -c 'import sys; print(sys.executable)')" benchmarks/int8_kernels.py   # AVX2 only
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROWS, K, N = 300, 512, 2048  # 3 s of LFR frames through Paraformer-large's feed-forward MatMul


def session(weight: np.ndarray, zero: np.ndarray) -> ort.InferenceSession:
    """A one-node MatMulInteger graph with ``weight`` and its zero point as initializers."""
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"])
    inits = [numpy_helper.from_array(weight, "B"), numpy_helper.from_array(np.array(0, np.uint8), "a_zero"),
             numpy_helper.from_array(zero, "b_zero")]
    return _one_node(node, TensorProto.UINT8, TensorProto.INT32, inits)


def float_session(weight: np.ndarray) -> ort.InferenceSession:
    """A one-node float32 MatMul graph: the speed the int8 forms are measured against."""
    node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    return _one_node(node, TensorProto.FLOAT, TensorProto.FLOAT, [numpy_helper.from_array(weight, "B")])


def _one_node(node: Any, in_type: int, out_type: int, inits: list) -> ort.InferenceSession:
    """A 1-thread session of the graph ``A (ROWS, K) -> node -> Y (ROWS, N)`` with ``inits``."""
    graph = helper.make_graph(
        [node], "matmul", [helper.make_tensor_value_info("A", in_type, [ROWS, K])],
        [helper.make_tensor_value_info("Y", out_type, [ROWS, N])], inits,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    """Print exactness and time per weight form."""
    rng = np.random.default_rng(0)
    acts = rng.integers(200, 256, (ROWS, K)).astype(np.uint8)
    uint8 = rng.integers(0, 256, (K, N)).astype(np.uint8)
    forms = {
        "uint8 weights (u8 x u8)": (uint8, np.full(N, 128, np.uint8)),
        "int8 weights, full range (shift)": ((uint8.astype(np.int16) - 128).astype(np.int8), np.zeros(N, np.int8)),
        "int8 weights in [-64, 64] (narrow)": (rng.integers(-64, 65, (K, N)).astype(np.int8), np.zeros(N, np.int8)),
    }
    for name, (weight, zero) in forms.items():
        exact = acts.astype(np.int64) @ (weight.astype(np.int64) - zero.astype(np.int64))
        sess = session(weight, zero)
        got = sess.run(None, {"A": acts})[0]
        best = min(_timed(sess, acts) for _ in range(20))
        print(f"{name:36s} wrong outputs {np.mean(got != exact):6.1%}  max |error| {np.abs(got - exact).max():8d}  "
              f"{best * 1000:7.2f} ms  {ROWS * K * N / best / 1e9:6.1f} GMAC/s")
    floats = rng.standard_normal((ROWS, K)).astype(np.float32)
    sess = float_session(rng.standard_normal((K, N)).astype(np.float32))
    best = min(_timed(sess, floats) for _ in range(20))
    print(f"{'float32 MatMul (for scale)':36s} {'':36s}  {best * 1000:7.2f} ms  {ROWS * K * N / best / 1e9:6.1f} GMAC/s")


def _timed(sess: ort.InferenceSession, acts: np.ndarray) -> float:
    start = time.perf_counter()
    sess.run(None, {"A": acts})
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
