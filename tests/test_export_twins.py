"""Each export-form layer against its eager twin, on random inputs with and without padding.

The export forms (funasr/export/layers.py and the families' export.py) recompute what the eager
models compute with masks always built from the lengths, explicit softmax attention and CIF by
matrix products, so a traced graph follows every shape. Whole graphs are tested in
test_export.py; here every mirrored layer is compared alone, so a change to one side that the
other does not follow fails at the layer that drifted. Weights are the tiny parity checkpoints.

Tolerance: the two forms differ only in float32 summation order (fused attention kernels, masks
multiplied in or skipped, matrix products instead of scatter-adds), a few ulps per operation;
values here are O(1)-O(10) (LayerNorm outputs, log-probabilities), so 1e-4 absolute plus 1e-4
relative holds with a wide margin on any CPU and thread count (measured <= 5e-6 on 1 and 2
threads), while a real difference (a mask, a scale, a missing residual) moves values by > 1e-2.
"""
from __future__ import annotations

import pytest
import torch

from conftest import auto
from funasr.export.layers import (
    CifExport,
    CrossAttentionExport,
    DecoderExport,
    DecoderLayerExport,
    EncoderExport,
    EncoderLayerExport,
    SelfAttentionExport,
    TimestampHead,
    attention,
    key_bias,
    token_mask,
)
from funasr.models.contextual_paraformer.export import ContextualDecoderExport, HotwordAttention
from funasr.models.ct_transformer.export import CTTransformerExport
from funasr.models.fsmn_vad.export import FsmnVADExport
from funasr.models.paraformer.cif import TIMESTAMP_FIRE, integrate_and_fire
from funasr.models.paraformer.decoder import masks
from funasr.models.paraformer.export import HotwordEmbedExport
from funasr.models.sanm import attend, length_mask
from funasr.models.seaco_paraformer.export import HotwordFilter

ATOL = RTOL = 1e-4
LENGTHS = {"padded": [23, 17, 4], "full": [23, 23, 23]}  # "full": the eager side skips its masks


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)


def net(name: str) -> torch.nn.Module:
    """The eager module of parity model ``name``."""
    return auto(name).task.net.module


def valid_rows(x: torch.Tensor, lens: torch.Tensor) -> list[torch.Tensor]:
    """Each item's first ``lens[b]`` steps of (B, T, ...)."""
    return [x[b, : int(n)] for b, n in enumerate(lens)]


def close_valid(got: torch.Tensor, want: torch.Tensor, lens: torch.Tensor) -> None:
    for g, w in zip(valid_rows(got, lens), valid_rows(want, lens)):
        close(g, w)


def decoder_inputs(decoder: torch.nn.Module, padding: str) -> tuple[torch.Tensor, ...]:
    """Memory lengths (3,), token counts (3,), memory (3, 23, D) and token embeddings (3, 9, D)."""
    d = decoder.after_norm.normalized_shape[0]
    tok_lens = torch.tensor([9, 6, 2] if padding == "padded" else [9, 9, 9])
    return torch.tensor(LENGTHS[padding]), tok_lens, torch.randn(3, 23, d), torch.randn(3, 9, d)


def export_masks(lens: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the export layers take: float (B, T, 1) and the additive key bias (B, 1, 1, T)."""
    valid = length_mask(lens, t)
    return valid[..., None].float(), key_bias(valid, torch.float32)


@pytest.fixture(autouse=True)
def _seeded_and_no_grad():
    torch.manual_seed(0)
    with torch.inference_mode():
        yield


# ---- SAN-M encoder --------------------------------------------------------------------------


@pytest.mark.parametrize("padding", LENGTHS)
def test_attention(padding):
    lens = torch.tensor(LENGTHS[padding])
    q, k, v = (torch.randn(3, 23, 32) for _ in range(3))
    _, key_mask = masks(lens, 23, torch.float32)
    _, bias = export_masks(lens, 23)
    close(attention(q, k, v, 4, 8, bias), attend(q, k, v, 4, key_mask))


@pytest.mark.parametrize("padding", LENGTHS)
@pytest.mark.parametrize("name", ["paraformer_tiny", "ct_punc_tiny"])
def test_encoder_layers(name, padding):
    encoder = net(name).encoder
    lens = torch.tensor(LENGTHS[padding])
    mask, key_mask = masks(lens, 23, torch.float32)
    emask, bias = export_masks(lens, 23)
    for layer in (encoder.encoders0[0], encoder.encoders[0]):
        x = torch.randn(3, 23, layer.norm1.normalized_shape[0])
        close_valid(SelfAttentionExport(layer.self_attn)(x, emask, bias), layer.self_attn(x, mask, key_mask), lens)
        close_valid(EncoderLayerExport(layer)(x, emask, bias), layer(x, mask, key_mask), lens)
    xs = torch.randn(3, 23, encoder.encoders0[0].norm1.normalized_shape[0])
    got, want = EncoderExport(encoder)(xs, lens), encoder(xs, lens)[0]
    close(got, want)  # both zero past each length


# ---- SAN-M decoder and cross-attention --------------------------------------------------------


@pytest.mark.parametrize("padding", LENGTHS)
def test_decoder_layers(padding):
    decoder = net("paraformer_tiny").decoder
    mem_lens, tok_lens, memory, x = decoder_inputs(decoder, padding)
    mask, _ = masks(tok_lens, 9, torch.float32)
    _, memory_mask = masks(mem_lens, 23, torch.float32)
    emask, _ = export_masks(tok_lens, 9)
    _, bias = export_masks(mem_lens, 23)
    layer = decoder.decoders[0]
    attn = CrossAttentionExport(layer.src_attn)
    close_valid(attn(x, memory, bias), layer.src_attn(x, memory, memory_mask), tok_lens)
    close(attn.weights(x, memory[:, :17]), layer.src_attn.weights(x, memory[:, :17], None))
    twin = DecoderLayerExport(layer)
    close_valid(twin.self_part(x, emask), layer.self_part(x, mask), tok_lens)
    close_valid(twin(x, emask, memory, bias), layer(x, mask, memory, memory_mask), tok_lens)
    hidden, log_probs = DecoderExport(decoder)(memory, bias, x, tok_lens)
    close_valid(hidden, decoder.hidden(memory, mem_lens, x, tok_lens), tok_lens)
    close_valid(log_probs, torch.log_softmax(decoder(memory, mem_lens, x, tok_lens), dim=-1), tok_lens)


# ---- CIF and the timestamp head ---------------------------------------------------------------


@pytest.mark.parametrize("padding", LENGTHS)
@pytest.mark.parametrize("name", ["paraformer_tiny", "bicif_paraformer_tiny"])
def test_cif(name, padding):
    predictor = net(name).predictor
    lens = torch.tensor(LENGTHS[padding])
    hidden = torch.randn(3, 23, predictor.cif_output.in_features) * 3  # a few tokens per item
    embeds, token_num = CifExport(predictor)(hidden, lens)
    want = predictor(hidden, lens)
    assert token_num.long().tolist() == want.token_num.tolist() and max(want.token_num.tolist()) > 0
    close(embeds, want.embeds)  # zero past each item's token count on both sides


@pytest.mark.parametrize("padding", LENGTHS)
def test_timestamp_head(padding):
    predictor = net("bicif_paraformer_tiny").predictor
    lens = torch.tensor(LENGTHS[padding])
    hidden = torch.randn(3, 23, predictor.cif_output.in_features)
    token_num = torch.tensor([5.0, 3.0, 1.0])
    alphas, peaks = TimestampHead(predictor)(hidden, lens, token_num)
    want = predictor.upsampled_alphas(hidden, lens, token_num)
    up = lens * predictor.upsample_times
    close_valid(alphas, want, up)
    fires = torch.from_numpy(integrate_and_fire(want.numpy(), TIMESTAMP_FIRE, TIMESTAMP_FIRE))
    close_valid(peaks, fires, up)


# ---- hotword models ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seaco_paraformer_tiny", "contextual_paraformer_tiny"])
def test_hotword_embedder(name):
    model = net(name)
    ids = [[5, 9, 11], [7], [3, 4], [model.sos]]
    padded = torch.zeros(len(ids), 3, dtype=torch.int32)
    for i, h in enumerate(ids):
        padded[i, : len(h)] = torch.tensor(h)
    embed = model.decoder.embed if name.startswith("seaco") or model.use_decoder_embedding else model.bias_embed
    out = HotwordEmbedExport(embed, model.bias_encoder)(padded)  # (L, H, D)
    close(out[[len(h) - 1 for h in ids], torch.arange(len(ids))], model.encode_hotwords(ids))


@pytest.mark.parametrize("padding", LENGTHS)
def test_seaco_hotword_filter(padding):
    model = net("seaco_paraformer_tiny")
    d = model.decoder.after_norm.normalized_shape[0]
    token_num = torch.tensor([9, 6, 2]) if padding == "padded" else torch.tensor([9, 9, 9])
    hidden, hotwords = torch.randn(3, 9, d), torch.randn(3, 12, d)
    nfilter = 4
    bias = HotwordFilter(model.seaco_decoder, nfilter)(hotwords, hidden, token_num, torch.tensor(12))
    kept = model.filter_hotwords(hotwords, hidden, token_num, nfilter)  # (B, nfilter + 1, D), the sentinel maybe twice
    for b in range(3):
        rows = [int((hotwords[b] == row).all(-1).nonzero()) for row in kept[b]]
        times = torch.bincount(torch.tensor(rows), minlength=12)  # the bias is log(times kept): twice kept, twice the weight
        assert torch.exp(bias[b]).round().long().tolist() == times.tolist()


@pytest.mark.parametrize("padding", LENGTHS)
def test_contextual_decoder(padding):
    decoder = net("contextual_paraformer_tiny").decoder
    mem_lens, tok_lens, memory, x = decoder_inputs(decoder, padding)
    hotwords = torch.randn(3, 5, x.shape[2])
    _, bias = export_masks(mem_lens, 23)
    close(HotwordAttention(decoder.bias_decoder)(x, hotwords), decoder.bias_decoder(x, hotwords))
    got = ContextualDecoderExport(decoder)(memory, bias, x, tok_lens, hotwords)
    want = torch.log_softmax(decoder(memory, mem_lens, x, tok_lens, hotwords), dim=-1)
    close_valid(got, want, tok_lens)


# ---- FSMN-VAD and CT-Transformer --------------------------------------------------------------


def test_vad_graph_cache_layout():
    model = net("fsmn-vad")
    feats = torch.randn(1, 30, 400)
    caches = [torch.randn(1, 19, 128) * 0.1 for _ in range(4)]
    scores, *new = FsmnVADExport(model)(feats, *[c.transpose(1, 2)[..., None] for c in caches])
    want, want_caches = model(feats, caches)
    close(scores, want)
    for got, c in zip(new, want_caches):
        close(got[..., 0].transpose(1, 2), c)


@pytest.mark.parametrize("padding", LENGTHS)
def test_punctuation_graph(padding):
    model = net("ct_punc_tiny")
    lens = torch.tensor(LENGTHS[padding])
    ids = torch.randint(1, model.embed.num_embeddings, (3, 23))
    got = CTTransformerExport(model)(ids, lens)
    for b, n in enumerate(lens.tolist()):
        close(got[b, :n], model(ids[b : b + 1, :n], torch.tensor([n]))[0])


def test_token_mask_marks_valid_tokens():
    mask = token_mask(torch.tensor([2, 0]), torch.zeros(2, 3, 4))
    assert mask[..., 0].tolist() == [[1, 1, 0], [0, 0, 0]]
