"""AutoModel on onnxruntime: funasr's ``AutoModel(...).generate(...)`` over exported model folders, without torch."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from funasr.errors import FunASRError
from funasr.options import check_constructor_args, check_flags, check_threads
from funasr.runner import Runner
from funasr.tasks import make_task
from funasr_onnx.session import exported_parts


def load_model(model: Union[str, Path], hub: str = "hf", **kwargs: Any) -> Any:
    """The task (with its onnxruntime engine) for the exported model folder's ``config.yaml``."""
    return make_task(*exported_parts(model, hub=hub, **kwargs))


class AutoModel(Runner):
    """``AutoModel(model=..., vad_model=..., punc_model=..., quantize=..., intra_op_num_threads=...).generate(input=...)``.

    Takes funasr's arguments and returns its result dicts. Model arguments are exported
    folders (or names whose hub folder holds exported graphs). ``quantize``, the thread
    counts, ``device`` and ``session_options`` apply to every model unless ``vad_kwargs`` /
    ``punc_kwargs`` say otherwise; ``ncpu`` is accepted as ``intra_op_num_threads``.
    One instance can serve several threads at once.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        vad_model: Optional[str] = None,
        punc_model: Optional[str] = None,
        hub: str = "hf",
        quantize: bool = False,
        intra_op_num_threads: int = 4,
        inter_op_num_threads: int = 1,
        device: str = "cpu",
        session_options: Any = None,
        ncpu: Optional[int] = None,
        batch_size: int = 1,
        vad_kwargs: Optional[dict] = None,
        punc_kwargs: Optional[dict] = None,
        disable_pbar: bool = False,
        **kwargs: Any,
    ) -> None:
        if model is None or not str(model).strip():
            raise FunASRError("AutoModel needs model=...: an exported model folder (see funasr-export)")
        check_flags(quantize=quantize)
        defaults = check_constructor_args(kwargs, vad_kwargs, punc_kwargs, batch_size=batch_size, disable_pbar=disable_pbar)
        session = {
            "quantize": quantize,
            "intra_op_num_threads": check_threads("ncpu", ncpu) or check_threads("intra_op_num_threads", intra_op_num_threads),
            "inter_op_num_threads": check_threads("inter_op_num_threads", inter_op_num_threads),
            "device": device or "cpu",
            "session_options": session_options,
        }
        main = load_model(model, hub, **session, **kwargs)
        vad = load_model(vad_model, hub, **{**session, **(vad_kwargs or {})}) if vad_model else None
        punc = load_model(punc_model, hub, **{**session, **(punc_kwargs or {})}) if punc_model else None
        super().__init__(main, main.kind, vad, punc, defaults)
