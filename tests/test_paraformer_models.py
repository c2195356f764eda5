"""Paraformer family networks: released layouts at full size, checkpoint loading, stage-by-stage parity."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
import yaml

from conftest import CHECKPOINTS, PARITY
from funasr import registry
from funasr.config import resolve_model_dir
from funasr.errors import CheckpointError, ConfigError
from funasr.models import load_checkpoint
from funasr.models.paraformer.engine import ParaformerEngine

FAMILY = {
    "paraformer": "Paraformer",
    "bicif_paraformer": "BiCifParaformer",
    "seaco_paraformer": "SeacoParaformer",
    "contextual_paraformer": "ContextualParaformer",
}
TINY = [f"{name}_tiny" for name in FAMILY]


def _listing(name: str) -> list[tuple[str, str, str]]:
    rows = (CHECKPOINTS / f"{name}.tsv").read_text().splitlines()
    return [tuple(row.split("\t")) for row in rows]


@pytest.mark.parametrize("name", list(FAMILY))
def test_released_layout_full_size(name):
    """Built from the released config on the meta device: exactly the reference's keys, shapes, dtypes, order."""
    cfg = yaml.safe_load((CHECKPOINTS / f"{name}.config.yaml").read_text())
    assert cfg["model"] == FAMILY[name]
    with torch.device("meta"):
        model = registry.lookup(cfg["model"]).from_config(cfg, input_size=560, vocab_size=8404)
    got = [(k, str(list(v.shape)), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    assert got == _listing(name)


@pytest.mark.parametrize(
    "name",
    ["SANMEncoder", "ParaformerSANMDecoder", "ContextualParaformerDecoder", "CifPredictorV2", "CifPredictorV3"],
)
def test_parts_are_registered(name):
    assert registry.lookup(name).__name__ == name


@lru_cache(maxsize=None)
def _tiny(name: str):
    cfg = resolve_model_dir(PARITY / "models" / name)
    model = registry.lookup(cfg["model"]).from_config(cfg, input_size=560, vocab_size=412)
    load_checkpoint(model, cfg["init_param"])
    return model.eval()


def test_checkpoint_with_module_prefix_loads(tmp_path):
    state = torch.load(PARITY / "models" / "paraformer_tiny" / "model.pt", weights_only=True)
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "model.pt")
    cfg = resolve_model_dir(PARITY / "models" / "paraformer_tiny")
    model = registry.lookup(cfg["model"]).from_config(cfg, input_size=560, vocab_size=412)
    load_checkpoint(model, tmp_path / "model.pt")
    assert torch.equal(model.predictor.cif_output.weight, state["predictor.cif_output.weight"])


@pytest.mark.parametrize("meta", [False, True])
def test_float16_checkpoint_loads_into_a_float32_model(tmp_path, meta):
    # a release stored in half precision: the model keeps float32 (CPU kernels), holding the rounded weights
    state = torch.load(PARITY / "models" / "paraformer_tiny" / "model.pt", weights_only=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, tmp_path / "model.pt")
    cfg = resolve_model_dir(PARITY / "models" / "paraformer_tiny")
    with torch.device("meta" if meta else "cpu"):
        model = registry.lookup(cfg["model"]).from_config(cfg, input_size=560, vocab_size=412)
    load_checkpoint(model, tmp_path / "model.pt")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    key = "predictor.cif_output.weight"
    assert torch.equal(model.state_dict()[key], state[key].half().float())


def test_checkpoint_missing_and_misshaped_keys_are_listed(tmp_path):
    state = torch.load(PARITY / "models" / "seaco_paraformer_tiny" / "model.pt", weights_only=True)
    del state["hotword_output_layer.bias"]
    state["bias_encoder.weight_ih_l1"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "model.pt")
    cfg = resolve_model_dir(PARITY / "models" / "seaco_paraformer_tiny")
    model = registry.lookup(cfg["model"]).from_config(cfg, input_size=560, vocab_size=412)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, tmp_path / "model.pt")
    assert "hotword_output_layer.bias" in str(err.value)
    assert "bias_encoder.weight_ih_l1" in str(err.value)


def test_unsupported_options_are_config_errors():
    cfg = yaml.safe_load((PARITY / "models" / "paraformer_tiny" / "config.yaml").read_text())
    cfg["encoder_conf"]["input_layer"] = "conv2d"
    with pytest.raises(ConfigError, match="input_layer"):
        registry.lookup(cfg["model"]).from_config(cfg, input_size=560, vocab_size=412)


@pytest.mark.parametrize("name", TINY)
def test_stages_match_reference_intermediates(name):
    """Encoder, CIF weights/fires/count/embeddings and (where recorded) decoder log-probs to ~1e-4."""
    ref = np.load(PARITY / "intermediates" / f"{name}__example.npz")
    model = _tiny(name)
    with torch.inference_mode():
        enc, enc_lens = model.encode(torch.from_numpy(ref["feats"]), torch.from_numpy(ref["feats_len"]))
        cif = model.predict(enc, enc_lens)
        np.testing.assert_allclose(enc.numpy(), ref["encoder_out"], atol=1e-4)
        assert enc_lens.tolist() == ref["encoder_out_len"].tolist()
        np.testing.assert_allclose(cif.alphas.numpy(), ref["alphas"], atol=1e-4)
        np.testing.assert_allclose(cif.peaks.numpy(), ref["peaks"], atol=1e-4)
        assert cif.token_num.tolist() == ref["token_num"].astype(int).tolist()
        np.testing.assert_allclose(cif.embeds.numpy(), ref["acoustic_embeds"], atol=1e-4)
        if "decoder_out" in ref.files:
            np.testing.assert_allclose(model.decode(enc, enc_lens, cif).numpy(), ref["decoder_out"], atol=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_padded_batch_equals_single(name):
    """Padding never leaks into a shorter utterance: encoder, CIF, decoder and timestamp inputs."""
    ref = np.load(PARITY / "intermediates" / f"{name}__example.npz")
    engine = ParaformerEngine(_tiny(name), resolve_model_dir(PARITY / "models" / name), device="cpu")
    feats = torch.from_numpy(ref["feats"])
    t = feats.shape[1]
    noise = torch.randn(1, t + 17, feats.shape[2], generator=torch.Generator().manual_seed(0))
    batch = torch.cat([torch.cat([feats, noise[:, :17]], dim=1), noise], dim=0)
    bias = engine.encode_hotwords([[1]]) if engine.always_bias else None  # Contextual: the sentinel alone
    single = engine.recognize(feats.numpy(), np.array([t]), bias, timestamps=True)
    both = engine.recognize(batch.numpy(), np.array([t, t + 17]), bias, timestamps=True)
    assert both.token_ids[0] == single.token_ids[0]
    np.testing.assert_allclose(both.stamp_weights[0], single.stamp_weights[0], atol=1e-5)
