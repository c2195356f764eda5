"""TensorRT: build a serialized engine from an exported ONNX graph, and run one (for checks and benchmarks).

Needs TensorRT >= 10 (``pip install tensorrt``) and an NVIDIA GPU. Networks are strongly
typed, the only kind TensorRT 11 builds (its precision flags such as ``BuilderFlag.FP16`` are
gone): the engine computes in the graph's own types. An fp16 engine is built from
``<name>_fp16.onnx``, traced from the model in float16 with its float32 parts (the CIF) kept,
as the PyTorch fp16 path runs; inputs and outputs stay float32. The engine has one
optimisation profile whose shape ranges come from the graph (``ExportGraph.axis_ranges``):
batches up to 16 and up to 10 minutes of LFR frames for ASR, long texts for punctuation.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from funasr.errors import ExportError
from funasr.export.graph import ExportGraph

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 4 << 30


def import_tensorrt() -> Any:
    """The tensorrt module, or ExportError saying what to install."""
    try:
        import tensorrt
    except ImportError as e:
        raise ExportError(
            f"type='tensorrt' needs NVIDIA TensorRT's Python package and a CUDA GPU ({e}); "
            "install it with `pip install tensorrt`, or export type='onnx' and build the engine where TensorRT is installed"
        ) from e
    return tensorrt


def build_engine(onnx_path: Path, engine_path: Path, graph: ExportGraph) -> Path:
    """Parse ``onnx_path`` into a strongly typed network, build an engine and write it to ``engine_path``."""
    trt = import_tensorrt()
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is None:
        raise ExportError(f"TensorRT {trt.__version__} is too old: type='tensorrt' needs TensorRT >= 10 (pip install -U tensorrt)")
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except (RuntimeError, TypeError) as e:
        raise ExportError(f"TensorRT cannot start a builder ({e}); it needs a CUDA GPU and its driver") from e
    network = builder.create_network(1 << int(strongly_typed))  # TensorRT 11: the only kind (the flag is ignored)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in graph.profile_shapes().items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT log above)")
    engine_path.write_bytes(bytes(serialized))
    log.info("wrote TensorRT engine %s", engine_path)
    return engine_path


class TensorRTRunner:
    """Runs a serialized engine on CUDA torch tensors; outputs of data-dependent shape are allocated on demand."""

    def __init__(self, engine_path: Path) -> None:
        trt = import_tensorrt()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # must outlive the engine
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise ExportError(f"TensorRT cannot load the engine {engine_path}; rebuild it for this GPU and TensorRT version")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.allocator_class = allocator_class(trt)

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """Inputs in the graph's order (moved to the GPU, dtypes as built) -> outputs on the GPU."""
        allocator = self.allocator_class(self.dtypes)
        feed = []  # keeps the input buffers alive until the run ends
        for name, x in zip(self.inputs, inputs):
            x = x.to("cuda", self.dtypes[name]).contiguous()
            feed.append(x)
            self.context.set_input_shape(name, tuple(x.shape))
            self.context.set_tensor_address(name, x.data_ptr())
        for name in self.outputs:
            self.context.set_output_allocator(name, allocator)
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ExportError("TensorRT execution failed (see the TensorRT log)")
        stream.synchronize()
        return [allocator.result(n) for n in self.outputs]


def torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    """The torch dtype of a TensorRT tensor dtype."""
    return torch.from_numpy(np.empty(0, dtype=trt.nptype(dtype))).dtype


def allocator_class(trt: Any) -> type:
    """An IOutputAllocator that gives each output a CUDA torch buffer of the size TensorRT asks for."""

    class Allocator(trt.IOutputAllocator):
        def __init__(self, dtypes: dict[str, torch.dtype]) -> None:
            trt.IOutputAllocator.__init__(self)
            self.dtypes = dtypes
            self.buffers: dict[str, torch.Tensor] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output(self, tensor_name: str, memory: Any, size: int, alignment: int) -> int:
            buf = torch.empty(max(size, 1), dtype=torch.uint8, device="cuda")
            self.buffers[tensor_name] = buf
            return buf.data_ptr()

        def reallocate_output_async(self, tensor_name: str, memory: Any, size: int, alignment: int, stream: Any) -> int:
            return self.reallocate_output(tensor_name, memory, size, alignment)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            self.shapes[tensor_name] = tuple(shape)

        def result(self, name: str) -> torch.Tensor:
            dtype, shape = self.dtypes[name], self.shapes[name]
            count = int(np.prod(shape, dtype=np.int64))
            return self.buffers[name][: count * dtype.itemsize].view(dtype).reshape(shape)

    return Allocator
