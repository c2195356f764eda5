"""The models inside the package: what they are, and that they export and run without PyTorch like the released ones."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import CLIP, CLIP_TEXT, ROOT, RUNTIME
from funasr.auto_model import AutoModel
from funasr.hub import BUNDLED


@pytest.mark.parametrize("name", ["paraformer-zh-small", "ct-punc-zh-small"])
def test_trained_models_ship_as_float16_with_a_model_card(name):
    folder = BUNDLED[name]
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}  # half the size in the wheel
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Licence" in card and "## Limits" in card
    assert sum(f.stat().st_size for f in folder.iterdir()) < 50 * 2**20
    tokens = json.loads((folder / "tokens.json").read_text(encoding="utf-8"))
    assert tokens == json.loads((BUNDLED["paraformer-zh-small"] / "tokens.json").read_text(encoding="utf-8"))


def test_bundled_chain_exports_to_int8_onnx_with_the_same_transcript(tmp_path):
    for name in ("paraformer-zh-small", "ct-punc-zh-small", "fsmn-vad"):
        AutoModel(model=name, device="cpu", disable_pbar=True).export(type="onnx", quantize=True, output_dir=str(tmp_path / name))
    sys.path.insert(0, str(RUNTIME))
    try:
        import funasr_onnx
    finally:
        sys.path.remove(str(RUNTIME))
    chain = funasr_onnx.AutoModel(model=str(tmp_path / "paraformer-zh-small"), vad_model=str(tmp_path / "fsmn-vad"),
                                  punc_model=str(tmp_path / "ct-punc-zh-small"), quantize=True, disable_pbar=True)
    assert [r["text"] for r in chain.generate(input=str(CLIP))] == [CLIP_TEXT]
    torch_chain = AutoModel(model="paraformer-zh-small", vad_model="fsmn-vad", punc_model="ct-punc-zh-small",
                            device="cpu", disable_pbar=True)
    assert [r["text"] for r in torch_chain.generate(input=str(CLIP))] == [CLIP_TEXT]
    assert str(ROOT / "funasr" / "assets") in str(BUNDLED["paraformer-zh-small"])
