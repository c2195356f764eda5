"""Realtime punctuation (CTTransformerStreaming): parity call by call, text streams, export and the torch-free runtime."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from conftest import CHECKPOINTS, MODELS, PARITY, ROOT, RUNTIME, auto, exported
from funasr import registry
from funasr.errors import FunASRError, OptionError
from funasr.models.ct_transformer_streaming.export import CTTransformerStreamingExport
from funasr.models.ct_transformer_streaming.model import vad_attention_mask
from funasr.models.ct_transformer_streaming.text import attention_masks
from funasr.streaming import PuncStream
from funasr.tasks.punc import RealtimePuncTask

NAME = "ct_punc_realtime_tiny"
CASES = json.loads((PARITY / "streaming.json").read_text(encoding="utf-8"))["punc_cases"]
TEXTS = ["跨境河流是养育沿岸", "hello world 我们 fun asr", "在上游地区极为恶劣的自然条件下克服巨大困难", "the model speech a hello",
         "中国今天天气不错", "我们开心 hello world", "学习工作音乐电话朋友", "人民的生命之源长期以来为帮助下游地区防灾减灾中方技术人员"]


def _task() -> RealtimePuncTask:
    task = auto(NAME).task
    assert isinstance(task, RealtimePuncTask)
    return task


def _replay(generate, case: dict) -> list:
    """Each call of ``case`` through ``generate(piece, cache)``: (result, carried words after) per call."""
    cache: dict = {}
    out = []
    for call in case["calls"]:
        (got,) = generate(call["input"], cache)
        out.append((got, list(cache["stream"].pre_text)))
    return out


def _check_case(case: dict, replayed: list) -> None:
    for call, (got, pre_text) in zip(case["calls"], replayed, strict=True):
        if call.get("error"):  # FunASR raised here: we give a result and keep the carried words
            assert isinstance(got["text"], str) and len(got["punc_array"]) == len(call["input"].split())
        else:
            assert got["text"] == call["text"]
            assert got["punc_array"] == call["punc_array"]
        assert pre_text == call["pre_text_after"]


# ---- parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_parity_pytorch(case):
    model = auto(NAME)
    _check_case(case, _replay(lambda piece, cache: model.generate(input=piece, cache=cache), case))


WORKER = r"""
import json, sys
sys.modules["torch"] = None  # from here on `import torch` raises ModuleNotFoundError
repo, runtime, model_dir, cases_file, out_file = sys.argv[1:]
sys.path[:0] = [runtime, repo]
import funasr_onnx

out = {}
for quantize in (False, True):
    model = funasr_onnx.AutoModel(model=model_dir, quantize=quantize, disable_pbar=True)
    alias = funasr_onnx.CT_Transformer_VadRealtime(model_dir, quantize=quantize)
    for case in json.load(open(cases_file, encoding="utf-8")):
        cache, stream, calls = {}, alias.create_stream(), []
        for call in case["calls"]:
            (got,) = model.generate(input=call["input"], cache=cache)
            stream.accept_text(call["input"])
            assert alias.decode_stream(stream) == {"text": got["text"], "punc_array": got["punc_array"]}
            calls.append([got, cache["stream"].pre_text])
        out[f"{quantize}/{case['id']}"] = calls
assert sys.modules["torch"] is None, "torch was imported"
json.dump(out, open(out_file, "w", encoding="utf-8"), ensure_ascii=False)
"""


@pytest.fixture(scope="module")
def torch_free_results(export_root, tmp_path_factory) -> dict:
    """Every punctuation case run by funasr_onnx (fp32 and int8, AutoModel and the reference's class name) without torch."""
    folder = tmp_path_factory.mktemp("rtpunc")
    (folder / "cases.json").write_text(json.dumps(CASES, ensure_ascii=False), encoding="utf-8")
    args = [sys.executable, "-c", WORKER, str(ROOT), str(RUNTIME), str(exported(export_root, NAME)), str(folder / "cases.json"), str(folder / "out.json")]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((folder / "out.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_parity_onnx_fp32_without_torch(torch_free_results, case):
    _check_case(case, torch_free_results[f"False/{case['id']}"])


def _marks(text: str) -> tuple[str, list[str]]:
    """``text``'s characters without the marks, and the mark after each character ("" for none)."""
    chars: list[str] = []
    marks: list[str] = []
    for ch in text:
        if ch in "，。？、" and chars:
            marks[-1] = ch
        else:
            chars.append(ch)
            marks.append("")
    return "".join(chars), marks


def test_onnx_int8_without_torch_close_to_fp32(torch_free_results):
    # int8 may move a near-tie mark (more so on CPUs without VNNI, where its weights keep 7 bits); never a word
    differ = total = 0
    for case in CASES:
        for (int8, _), (fp32, _) in zip(torch_free_results[f"True/{case['id']}"], torch_free_results[f"False/{case['id']}"], strict=True):
            (int8_chars, int8_marks), (fp32_chars, fp32_marks) = _marks(int8["text"]), _marks(fp32["text"])
            assert int8_chars == fp32_chars and len(int8["punc_array"]) == len(fp32["punc_array"])
            differ += sum(a != b for a, b in zip(int8_marks, fp32_marks))
            total += len(fp32_marks)
    assert differ <= total // 50, (differ, total)


# ---- calls FunASR refuses, and bad arguments ------------------------------------------------


def test_one_word_call_gives_a_result_and_keeps_the_carried_words():
    model = auto(NAME)
    cache: dict = {}
    (got,) = model.generate(input="好", cache=cache)
    assert got["text"] == "好" and len(got["punc_array"]) == 1
    assert cache["stream"].pre_text == []
    (got,) = model.generate(input="你好世界", cache=cache)
    assert got["text"] == "你好世界" and len(got["punc_array"]) == 4


@pytest.mark.parametrize("text", ["", "  \n"])
def test_empty_piece_returns_nothing_new(text):
    task = _task()
    stream = task.create_stream()
    assert task.decode_stream(stream) == {"text": "", "punc_array": []}
    stream.accept_text("跨境河流是养育沿岸")
    first = task.decode_stream(stream)
    carried = list(stream.pre_text)
    stream.accept_text(text)
    got = task.decode_stream(stream)
    assert first["text"] == "跨境河流是养育沿岸"
    # FunASR raises here (nothing to return): the carried words are labelled again and kept
    assert got == {"text": "", "punc_array": [1] * 9}
    assert stream.pre_text == carried


def test_cache_misuse_is_refused():
    model = auto(NAME)
    with pytest.raises(OptionError, match="cache"):
        model.generate(input="你好", cache=[])
    with pytest.raises(OptionError, match="one PUNC stream"):
        model.generate(input=["你好", "世界"], cache={})
    with pytest.raises(OptionError, match="empty dict"):
        model.generate(input="你好", cache={"pre_text": ["好"]})
    with pytest.raises(FunASRError, match="accept_text"):
        PuncStream().accept_text(None)


def test_without_cache_each_text_starts_a_stream():
    model = auto(NAME)
    got = model.generate(input=TEXTS[:3])
    assert [g["text"] for g in got] == [model.generate(input=t, cache={})[0]["text"] for t in TEXTS[:3]]


# ---- streams --------------------------------------------------------------------------------


def test_decode_streams_batches_streams_at_different_positions():
    task = _task()
    streams = [task.create_stream() for _ in range(8)]
    for i, stream in enumerate(streams):  # stream i has punctuated i pieces already
        for piece in TEXTS[:i]:
            stream.accept_text(piece)
            task.decode_stream(stream)
    alone = copy.deepcopy(streams)
    for i, stream in enumerate(streams):
        stream.accept_text(TEXTS[-1 - i] * (1 + i % 3))  # windows of 1 to 3 rounds
    for i, stream in enumerate(alone):
        stream.accept_text(TEXTS[-1 - i] * (1 + i % 3))
    got = task.decode_streams(streams)
    want = [task.decode_stream(s) for s in alone]
    assert got == want
    assert [s.pre_text for s in streams] == [s.pre_text for s in alone]
    assert len({len(s.pre_text) for s in streams}) > 1


def test_pieces_accepted_together_are_one_call():
    task = _task()
    one, two = task.create_stream(), task.create_stream()
    one.accept_text("我们开心")
    one.accept_text("hello world")
    two.accept_text("我们开心 hello world")
    assert task.decode_stream(one) == task.decode_stream(two)
    assert task.decode_stream(one) == {"text": "", "punc_array": []}


# ---- the network ----------------------------------------------------------------------------


def test_vad_mask():
    mask = vad_attention_mask(5, torch.tensor([3, 0, 5]))
    assert mask[0].int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert bool(mask[1:].all())
    vad, causal = attention_masks(5, [3, 0, 5])
    assert vad.shape == causal.shape == (3, 1, 5, 5)
    np.testing.assert_array_equal(vad[:, 0], mask.float().numpy())
    np.testing.assert_array_equal(causal[1, 0], np.tril(np.ones((5, 5))))


def test_carried_words_do_not_see_new_ones():
    module = _task().net.module
    ids = torch.randint(1, module.embed.num_embeddings, (1, 12))
    with torch.inference_mode():
        full = module(ids, torch.tensor([12]), torch.tensor([6]))
        changed = ids.clone()
        changed[0, 6:] = torch.randint(1, module.embed.num_embeddings, (6,))
        other = module(changed, torch.tensor([12]), torch.tensor([6]))
    torch.testing.assert_close(full[0, :5], other[0, :5])  # rows up to index-2 are blind to columns >= index
    assert not torch.allclose(full[0, 6:], other[0, 6:])


def test_released_layout():
    cfg = yaml.safe_load((CHECKPOINTS / "ct_punc_realtime.config.yaml").read_text(encoding="utf-8"))
    tiny = torch.load(MODELS / NAME / "model.pt", map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = registry.lookup(cfg["model"]).from_config(cfg, input_size=None, vocab_size=272727)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == list(tiny)  # the released key names, in order
    assert shapes["embed.weight"] == (272727, 256) and shapes["decoder.weight"] == (6, 256)
    assert shapes["encoder.encoders.1.self_attn.fsmn_block.weight"] == (256, 1, 11)
    assert shapes["encoder.encoders0.0.feed_forward.w_1.weight"] == (1024, 256)
    assert registry.family_of(cfg["model"]).task == "funasr.tasks.punc:RealtimePuncTask"


# ---- export ---------------------------------------------------------------------------------


def test_onnx_graph_contract_and_values(export_root):
    out = exported(export_root, NAME)
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["inputs", "text_lengths", "vad_masks", "sub_masks"]
    assert [o.name for o in graph.output] == ["logits"]
    assert (out / "model_quant.onnx").is_file() and (out / "tokens.json").is_file()
    module = _task().net.module
    ids = np.random.default_rng(3).integers(1, module.embed.num_embeddings, (1, 17)).astype(np.int32)
    lens = np.array([17], np.int32)
    vad, causal = attention_masks(17, [7])
    session = ort.InferenceSession(str(out / "model.onnx"))
    (logits,) = session.run(None, {"inputs": ids, "text_lengths": lens, "vad_masks": vad, "sub_masks": causal})
    with torch.inference_mode():
        want = module(torch.from_numpy(ids).long(), torch.tensor([17]), torch.tensor([7])).numpy()
    np.testing.assert_allclose(logits, want, atol=1e-4)
    # FunASR's runtimes feed the VAD mask as sub_masks too: the graph runs, with other values
    (theirs,) = session.run(None, {"inputs": ids, "text_lengths": lens, "vad_masks": vad, "sub_masks": vad})
    assert theirs.shape == want.shape and not np.allclose(theirs, want, atol=1e-4)


@pytest.mark.parametrize("lens", [[9, 9], [9, 4]])
def test_export_form_equals_model(lens):
    module = _task().net.module
    lens_t = torch.tensor(lens)
    ids = torch.randint(1, module.embed.num_embeddings, (2, 9))
    vad, causal = (torch.from_numpy(m) for m in attention_masks(9, [3, 5]))
    with torch.inference_mode():
        got = CTTransformerStreamingExport(module)(ids.int(), lens_t.int(), vad, causal)
        for b, n in enumerate(lens):
            want = module(ids[b : b + 1, :n], torch.tensor([n]), torch.tensor([[3, 5][b]]))
            torch.testing.assert_close(got[b, :n], want[0], atol=1e-5, rtol=1e-5)


def test_torchscript(export_root):
    traced = torch.jit.load(str(exported(export_root, NAME, "torchscript") / "model.torchscript"))
    module = _task().net.module
    ids = torch.randint(1, module.embed.num_embeddings, (1, 14), dtype=torch.int32)
    vad, causal = (torch.from_numpy(m) for m in attention_masks(14, [4]))
    with torch.inference_mode():
        got = traced(ids, torch.tensor([14], dtype=torch.int32), vad, causal)
        torch.testing.assert_close(got, module(ids.long(), torch.tensor([14]), torch.tensor([4])), atol=1e-5, rtol=1e-5)
