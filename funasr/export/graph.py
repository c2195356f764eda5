"""What each model family hands the exporters: graphs with their inputs, names and shape ranges."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

# Shape ranges (min, opt, max) of the dynamic axes, for TensorRT optimisation profiles.
# "feats_length" covers LFR frames of up to 10 minutes of audio (100 frames/s / 6), enough for
# a whole VAD segment or a long clip decoded without VAD.
DEFAULT_AXIS_RANGES: dict[str, tuple[int, int, int]] = {
    "batch_size": (1, 1, 16),
    "feats_length": (1, 500, 10000),
    "text_length": (1, 20, 2000),
    "num_hotwords": (1, 10, 256),
    "hotword_length": (1, 10, 32),
}


@dataclass
class ExportGraph:
    """One exported file: a module whose ``forward(*inputs)`` returns a tuple, and how to name its tensors.

    ``name`` is the file stem (``model``, ``model_eb``); ``inputs`` are example tensors for
    tracing; ``dynamic_axes`` maps a tensor name to ``{axis: axis_name}``.
    """

    name: str
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    axis_ranges: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(DEFAULT_AXIS_RANGES))

    def profile_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Per input, the (min, opt, max) shapes of a TensorRT optimisation profile."""
        out = {}
        for name, example in zip(self.input_names, self.inputs):
            axes = self.dynamic_axes.get(name, {})
            shapes = []
            for which in range(3):
                shape = list(example.shape)
                for axis, axis_name in axes.items():
                    shape[axis] = self.axis_ranges[axis_name][which]
                shapes.append(tuple(shape))
            out[name] = (shapes[0], shapes[1], shapes[2])
        return out
