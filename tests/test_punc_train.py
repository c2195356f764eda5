"""CT-Transformer punctuation training: labelled words, windows, and a tiny model that learns its text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from funasr import AutoModel
from funasr.bin.train import main as train_main
from funasr.data.punc import PuncDataset, label_words
from funasr.errors import OptionError
from funasr.tokenizer import CharTokenizer

PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]
TEXTS = [
    "今天天气很好，我们去公园散步。你想一起来吗？",
    "这本书写得不错，值得一看。",
    "房间很干净，服务也好，下次还来。",
    "价格有点贵，不过质量可以。",
]


def tokens(texts: list[str]) -> list[str]:
    chars = sorted({c for t in texts for c in t if c not in "，。？、"})
    return ["<blank>", "<s>", "</s>", *chars, "<unk>"]


def test_label_words_maps_marks_to_classes() -> None:
    words, labels = label_words("你好! 今天,好吗? 好的；谢谢：再见", PUNC_LIST)
    assert words == list("你好今天好吗好的谢谢再见")
    assert [PUNC_LIST[i] for i in labels] == ["_", "。", "_", "，", "_", "？", "_", "。", "_", "，", "_", "_"]


def test_windows_start_at_sentences_and_follow_the_epoch(tmp_path: Path) -> None:
    text = tmp_path / "punc.txt"
    text.write_text("\n".join(TEXTS * 3) + "\n\n", encoding="utf-8")
    tokenizer = CharTokenizer(token_list=tokens(TEXTS))
    data = PuncDataset(str(text), tokenizer, PUNC_LIST, is_training=True, split_size=3, max_words=9, seed=1)
    assert len(data) == 12 and data.bad_data() == {"empty_text": 1}
    for epoch in range(3):
        data.set_epoch(epoch)
        for i in range(len(data)):
            start, end = data.window(i)
            assert start in set(data.starts[i].tolist()) and 1 <= end - start <= 9
            item = data[i]
            assert torch.equal(item["punc"], torch.from_numpy(data.labels[i][start:end]))
    data.set_epoch(0)
    first = [data.window(i) for i in range(len(data))]
    data.set_epoch(1)
    assert [data.window(i) for i in range(len(data))] != first
    batch = data.collate([data[0], data[1]])
    assert batch["text"].shape == batch["punc"].shape and int(batch["text_lengths"].max()) == batch["text"].shape[1]
    with pytest.raises(OptionError, match="does not exist"):
        PuncDataset(str(tmp_path / "missing.txt"), tokenizer, PUNC_LIST)


def test_tiny_punctuation_model_learns_its_text(tmp_path: Path) -> None:
    text = tmp_path / "punc.txt"
    text.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    token_list = tmp_path / "tokens.json"
    token_list.write_text(json.dumps(tokens(TEXTS), ensure_ascii=False), encoding="utf-8")
    config = tmp_path / "punc.yaml"
    config.write_text(
        "model: CTTransformer\n"
        "model_conf: {ignore_id: 0, embed_unit: 32, att_unit: 32, sentence_end_id: 3,"
        " punc_list: ['<unk>', '_', '，', '。', '？', '、']}\n"
        "encoder: SANMEncoder\n"
        "encoder_conf: {input_size: 32, output_size: 32, attention_heads: 2, linear_units: 64, num_blocks: 1,"
        " dropout_rate: 0.0, positional_dropout_rate: 0.0, attention_dropout_rate: 0.0, input_layer: pe,"
        " pos_enc_class: SinusoidalPositionEncoder, normalize_before: true, kernel_size: 5, sanm_shfit: 0,"
        " selfattention_layer_type: sanm}\n"
        "tokenizer: CharTokenizer\n"
        "tokenizer_conf: {unk_symbol: <unk>}\n"
        "optim: adam\noptim_conf: {lr: 0.01}\nscheduler: warmuplr\nscheduler_conf: {warmup_steps: 10}\n"
        "dataset_conf: {batch_type: example, batch_size: 4, split_size: 40, max_words: 40, num_workers: 0}\n",
        encoding="utf-8",
    )
    out = tmp_path / "exp"
    status = train_main([
        "--config-path", str(tmp_path), "--config-name", "punc.yaml", f"++train_data_set_list={text}",
        f"++valid_data_set_list={text}", f"++tokenizer_conf.token_list={token_list}", f"++output_dir={out}",
        "++train_conf.max_epoch=60", "++train_conf.log_interval=100", "++train_conf.avg_nbest_model=0", "++device=cpu",
    ])
    assert status == 0 and (out / "model.pt").is_file()
    model = AutoModel(model=str(out), disable_update=True)
    plain = TEXTS[1].replace("，", "").replace("。", "")
    assert model.generate(input=plain)[0]["text"] == TEXTS[1]
