"""funasr-train: fine-tuning into a complete model folder, exact resume, torchrun DDP, averaging, checks."""
from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import MODELS, ROOT
from funasr.auto_model import AutoModel
from funasr.errors import ConfigError, FunASRError, OptionError
from funasr.models.checkpoint import read_state_dict
from funasr.train import checkpoint
from funasr.train.config import load_config
from funasr.train.optim import WarmupLR
from funasr.train.run import train
from training import make_corpus, make_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = MODELS / "paraformer_tiny"


def args(data: Path, out: Path, *extra: str) -> list[str]:
    """A funasr-train command line fine-tuning the tiny Paraformer on ``data``, validating on its first 2 lines."""
    valid = data.with_name(data.stem + ".valid.jsonl")
    if not valid.is_file():
        valid.write_text("".join(data.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    return [f"++model={TINY}", f"++train_data_set_list={data}", f"++valid_data_set_list={valid}",
            "++dataset_conf.batch_type=example", "++dataset_conf.batch_size=4", "++dataset_conf.num_workers=0",
            "++train_conf.log_interval=1", "++optim_conf.lr=0.002", "++scheduler_conf.warmup_steps=10",
            f"++output_dir={out}", "++device=cpu", *extra]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_jsonl(tmp_path_factory.mktemp("corpus"), n=8)


def history(folder: Path) -> list[tuple]:
    """(step, loss, acc, lr) of every logged step of the run saved in ``folder/model.pt``."""
    return [(h["step"], h["loss"], h["acc"], h["lr"]) for h in checkpoint.load(folder / "model.pt")["history"]]


def test_finetune_writes_a_model_folder_that_autmodel_and_export_load(corpus, tmp_path):
    out = train(load_config(args(corpus, tmp_path / "exp", "++train_conf.max_epoch=2", "++train_conf.avg_nbest_model=2")))
    for name in ("config.yaml", "configuration.json", "tokens.json", "am.mvn", "model.pt", "model.pt.ep1",
                 "model.pt.ep2", "model.pt.best", "model.pt.avg2"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    trained = read_state_dict(out / "model.pt")
    start = read_state_dict(TINY / "model.pt")
    key = "decoder.decoders.0.feed_forward.w_1.weight"
    assert not torch.equal(trained[key], start[key])
    model = AutoModel(model=str(out), device="cpu", disable_pbar=True)
    assert torch.equal(model.model.state_dict()[key], trained[key])  # the trained weights, not the starting ones
    assert model.generate(input=str(corpus.parent / "wav" / "utt00.wav"))[0]["key"] == "utt00"
    from funasr.bin.export import main as export_main

    assert export_main(["--model", str(out), "--output-dir", str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "model.onnx").is_file()


def test_resume_from_model_pt_continues_exactly(corpus, tmp_path):
    # 3 batches an epoch (3, 3, 2 utterances); a checkpoint every 2 steps as well as at epoch ends.
    common = ("++dataset_conf.batch_size=3", "++train_conf.max_epoch=2", "++train_conf.validate_interval=2",
              "++train_conf.avg_nbest_model=0")
    whole = train(load_config(args(corpus, tmp_path / "whole", *common)))
    want = history(whole)
    assert [h[0] for h in want] == [1, 2, 3, 4, 5, 6]
    for saved, steps in (("model.pt.ep1.2", 2), ("model.pt.ep1", 3)):  # inside the first epoch, at its end
        again = tmp_path / f"from-{saved}"
        again.mkdir()
        shutil.copyfile(whole / saved, again / "model.pt")
        assert history(train(load_config(args(corpus, again, *common, "++resume=true")))) == want, saved
        assert checkpoint.load(again / "model.pt")["step"] == 6


def test_torchrun_two_processes_step_as_one_with_the_same_global_batch(corpus, tmp_path):
    # 4 global batches of 2 utterances, 3 a step: a synchronised step, then the epoch's incomplete one
    common = args(corpus, tmp_path, "++train_conf.max_epoch=1", "++train_conf.avg_nbest_model=0", "++train_conf.accum_grad=3",
                  "++model_conf.sampling_ratio=0",  # the glancing sampler's draws depend on the batch split
                  "++optim=sgd", "++optim_conf.lr=0.5")  # Adam's first step is lr * sign(grad): noise-sized grads flip
    one = train(load_config([*common, "++dataset_conf.batch_size=2", f"++output_dir={tmp_path / 'one'}"]))
    env = _recipe_env()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", env["MASTER_PORT"], "-m", "funasr.bin.train", *common, "++dataset_conf.batch_size=1",
           f"++output_dir={tmp_path / 'two'}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = read_state_dict(one / "model.pt"), read_state_dict(tmp_path / "two" / "model.pt")
    start = read_state_dict(TINY / "model.pt")
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], start[k]) for k in a)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    assert checkpoint.load(one / "model.pt")["step"] == checkpoint.load(tmp_path / "two" / "model.pt")["step"] == 2


def test_average_is_the_elementwise_mean(tmp_path):
    gen = torch.Generator().manual_seed(0)
    states = [{"w": torch.randn(3, 4, generator=gen), "h": torch.randn(5, generator=gen).half(), "n": torch.tensor(i)}
              for i in range(3)]
    paths = []
    for i, state in enumerate(states):
        paths.append(tmp_path / f"model.pt.ep{i + 1}")
        torch.save({"state_dict": state}, paths[-1])
    avg = checkpoint.average_state_dicts(paths)
    torch.testing.assert_close(avg["w"], torch.stack([s["w"] for s in states]).mean(0))
    assert avg["h"].dtype == torch.float16
    torch.testing.assert_close(avg["h"], torch.stack([s["h"].double() for s in states]).mean(0).half())
    assert int(avg["n"]) == 0 + 1 + 2  # integer tensors are summed, as FunASR does


def test_warmuplr_is_funasrs():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=5e-4)
    sched = WarmupLR(opt, warmup_steps=30000)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(3.333e-8, rel=1e-3)  # logged by FunASR at step 1
    for _ in range(29999):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4 * (30000 / 30001) ** 0.5, rel=1e-6)  # past the peak


@pytest.mark.parametrize("extra, error, words", [
    (["++train_conf.max_epochs=3"], OptionError, "train_conf.max_epochs"),
    (["++train_conf.max_epoch=0"], OptionError, "integer >= 1"),
    (["++train_conf.use_fp16=true", "++train_conf.use_bf16=true"], OptionError, "pick one"),
    (["++optim=adamx"], OptionError, "adam, adamw, sgd"),
    (["++optim_conf.learning_rate=0.1"], OptionError, "optim_conf.learning_rate"),
    (["++optim_conf.lr=-1"], OptionError, "lr"),
    (["++scheduler_conf.warmup_steps=0"], OptionError, "warmup_steps"),
    (["++lr=0.1"], OptionError, "++lr is not a training option"),
    (["++valid_data_set_list=/nonexistent.jsonl"], OptionError, "does not exist"),
    (["++model=/nonexistent/model"], FunASRError, "/nonexistent/model"),
    (["++tokenizer_conf.token_list=/nonexistent/tokens.json"], ConfigError, "token_list"),
    (["++init_param=/nonexistent/model.pt"], OptionError, "init_param"),
    (["++device=gpu"], OptionError, "device"),
    (["train_conf.max_epoch"], OptionError, "++key=value"),
])
def test_bad_options_are_refused_before_any_work(corpus, tmp_path, extra, error, words):
    with pytest.raises(error, match=None) as e:
        load_config(args(corpus, tmp_path / "exp", *extra))
    assert words in str(e.value)
    assert not (tmp_path / "exp").exists()


def _recipe_env(**settings: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "python": sys.executable, "MASTER_PORT": str(_free_port())}
    env.update(settings)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # the same trainer runs in the default tests; this adds the shell steps
def test_finetune_sh_runs_lists_to_cer(tmp_path):
    lists = make_corpus(tmp_path / "corpus", n=4)
    data = tmp_path / "list"
    data.mkdir()
    for split in ("train", "val"):
        shutil.copyfile(lists["wav.scp"], data / f"{split}_wav.scp")
        shutil.copyfile(lists["text"], data / f"{split}_text.txt")
    out = tmp_path / "outputs"
    env = _recipe_env(model=str(TINY), data_dir=str(data), output_dir=str(out), device="cpu", batch_type="example",
                      batch_size="4", max_epoch="1", num_workers="0", avg_num="1", lr="0.002")
    done = subprocess.run(["bash", str(ROOT / "egs" / "finetune.sh"), "++scheduler_conf.warmup_steps=10"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "%CER" in done.stdout
    for name in ("config.yaml", "tokens.json", "am.mvn", "model.pt", "model.pt.avg1", "log.txt"):
        assert (out / name).is_file(), name
    assert len((out / "decode_val_avg1" / "1best_recog" / "text").read_text(encoding="utf-8").splitlines()) == 4


@pytest.mark.slow
def test_aishell_recipe_from_scratch_overfits_a_tiny_corpus(tmp_path):
    """All stages on 20 clips (train = dev = test): the tiny Paraformer learns them (CER ~0), loads and exports."""
    raw = tmp_path / "raw"
    lists = make_corpus(raw / "train", n=20)
    for split in ("dev", "test"):
        (raw / split).mkdir()
        for name in ("wav.scp", "text"):
            shutil.copyfile(lists[name], raw / split / name)
    env = _recipe_env(raw_data=str(raw), work=str(tmp_path), config="paraformer_tiny.yaml", avg_num="5", device="cpu")
    done = subprocess.run(["bash", str(ROOT / "egs" / "aishell" / "paraformer" / "run.sh"), "++train_conf.max_epoch=80"],
                          env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    exp = tmp_path / "exp" / "baseline_paraformer_tiny_zh_char_exp1"
    cer = (exp / "decode_test_avg5" / "text.cer").read_text(encoding="utf-8")
    assert float(cer.split()[1]) <= 5.0, cer
    model = AutoModel(model=str(exp), init_param=str(exp / "model.pt.avg5"), device="cpu", disable_pbar=True)
    refs = dict(line.split(maxsplit=1) for line in lists["text"].read_text(encoding="utf-8").splitlines())
    got = model.generate(input=str(raw / "train" / "wav" / "utt00.wav"))[0]["text"]
    assert got.replace(" ", "") == refs["utt00"]
    from funasr.bin.export import main as export_main

    assert export_main(["--model", str(exp), "--output-dir", str(tmp_path / "onnx")]) == 0


def test_non_finite_gradient_norm_skips_the_update(corpus, tmp_path):
    from funasr.train.distributed import World
    from funasr.train.run import build_trainer

    trainer, _ = build_trainer(load_config(args(corpus, tmp_path / "exp")), World(), torch.device("cpu"))
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    params[3].grad.view(-1)[0] = float("nan")
    trainer._step()
    assert (trainer.progress.step, trainer.progress.skipped_steps) == (1, 1)
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    assert all(p.grad is None for p in params)  # the bad gradients are dropped, not carried into the next step
    for p in params:
        p.grad = torch.ones_like(p)
    trainer._step()
    assert trainer.progress.skipped_steps == 1
    assert not torch.equal(params[3], before[3])


class _Terminal(io.StringIO):
    """A captured stderr that says it is a terminal (the trainer draws its progress bar only on one)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("precision, dtype", [("use_bf16", torch.bfloat16), ("use_fp16", torch.float16),
                                              pytest.param(None, torch.float32, marks=pytest.mark.slow)])
def test_accumulation_autocast_and_progress_bar(corpus, tmp_path, monkeypatch, caplog, precision, dtype):
    from funasr.train.distributed import World
    from funasr.train.run import build_trainer

    # 8 utterances in batches of 2, two batches a step: 2 optimizer steps
    extra = [f"++train_conf.{precision}=true"] if precision else []
    cfg = load_config(args(corpus, tmp_path / "exp", *extra, "++train_conf.accum_grad=2", "++dataset_conf.batch_size=2",
                           "++train_conf.max_epoch=1", "++train_conf.avg_nbest_model=0"))
    trainer, _ = build_trainer(cfg, World(), torch.device("cpu"))
    seen = set()
    trainer.model.decoder.decoders[0].feed_forward.w_1.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    with caplog.at_level(logging.INFO, logger="funasr.train.trainer"):
        trainer.fit(1)
    trainer.close()
    assert seen == {dtype}  # the layers ran in the asked precision, in training and validation
    state = checkpoint.load(tmp_path / "exp" / "model.pt")
    assert state["step"] == 2 and len(state["history"]) == 2
    assert all(math.isfinite(h["loss"]) and h["audio_s_per_s"] > 0 for h in state["history"])
    # the loss parts ride beside the loss: the Paraformer's attention and predictor losses, in training and validation
    assert all(h["loss_att"] > 0 and h["loss_pre"] >= 0 for h in state["history"])
    lines = [r.getMessage() for r in caplog.records]
    assert sum(bool(re.search(r"epoch \d+ step \d+: loss [0-9.]+ \(loss_att [0-9.]+, loss_pre [0-9.]+\) acc", m)) for m in lines) == 2
    assert any(re.search(r"validation after step \d+: loss [0-9.]+ \(loss_att [0-9.]+, loss_pre [0-9.]+\) acc", m) for m in lines)
    assert (state["scaler"] is not None) == (precision == "use_fp16")  # fp16 scales the loss, and resumes its scale
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    bar = screen.getvalue()
    assert "epoch 1" in bar and "4/4" in bar, bar
    assert re.search(r"loss=\d+\.\d{3}", bar) and re.search(r"speed=\d+\.\d audio s/s", bar), bar  # loss and throughput


@pytest.mark.parametrize("extra, words", [
    (["++dataset_conf.batch_sizes=4"], "dataset_conf.batch_sizes is not a dataset option"),
    (["++dataset_conf.index_ds=IndexDSJsonlRankFull"], "IndexDSJsonl"),
    (["++dataset_conf.batch_sampler=MyBatchSampler"], "EspnetStyleBatchSampler"),
    (["++dataset_conf.data_split_num=4"], "data_split_num"),
    (["++dataset_conf.preprocessor_speech=SpeechPreprocessFancy"], "SpeechPreprocessSpeedPerturb"),
    (["++dataset_conf.preprocessor_speech_conf.speed_perturb=[0.9,1.1]"], "preprocessor_speech is not"),
    (["++dataset_conf.preprocessor_text=TextPreprocessSegDict"], "preprocessor_text"),
    (["++dataset=AudioDatasetHotword"], "AudioDataset"),
])
def test_dataset_conf_keys_are_honoured_or_refused(corpus, tmp_path, extra, words):
    with pytest.raises(OptionError) as e:
        load_config(args(corpus, tmp_path / "exp", *extra))
    assert words in str(e.value)


def test_released_dataset_conf_keys_all_load(corpus, tmp_path, caplog):
    """Every dataset_conf key of the released Paraformer configs and FunASR's recipes is read (buffer_size: warned)."""
    import yaml

    released = {}
    for path in sorted((ROOT / "tests" / "fixtures" / "checkpoints").glob("*paraformer*.config.yaml")):
        released.update(yaml.safe_load(path.read_text(encoding="utf-8"))["dataset_conf"])
    released.update(batch_sampler="EspnetStyleBatchSampler", sort_size=1024, data_split_num=1, dataloader="DataloaderMapStyle",
                    preprocessor_speech="SpeechPreprocessSpeedPerturb", preprocessor_speech_conf={"speed_perturb": [0.9, 1.0, 1.1]})
    overrides = [f"++dataset_conf.{k}={json.dumps(v)}" for k, v in released.items() if not isinstance(v, dict)]
    overrides.append("++dataset_conf.preprocessor_speech_conf.speed_perturb=[0.9,1.0,1.1]")
    with caplog.at_level(logging.WARNING):
        cfg = load_config([*args(corpus, tmp_path / "exp"), "++dataset=AudioDataset", *overrides])
    assert {"index_ds", "buffer_size", "shuffle", "max_token_length"} <= set(cfg["dataset_conf"])
    assert "dataset_conf.buffer_size=500 has no effect" in caplog.text


def test_bad_data_lines_are_reported_skipped_and_counted(corpus, tmp_path, caplog):
    good = corpus.read_text(encoding="utf-8").splitlines()
    first = json.loads(good[0])
    bad = [
        "{not json",
        json.dumps({**first, "key": "gone", "source": str(tmp_path / "missing.wav")}),
        json.dumps({**first, "key": "empty", "target": "", "target_len": 0}),
        json.dumps({**first, "key": "oov", "target": "\u9fa5\u9fa4"}),
        json.dumps({**first, "key": "broken", "source": str(tmp_path / "broken.wav")}),
        json.dumps({**first, "key": "liar", "source_len": 3}),
    ]
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(good[:4] + bad) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        out = train(load_config(args(data, tmp_path / "exp", "++train_conf.max_epoch=1", "++train_conf.avg_nbest_model=0")))
    log = caplog.text
    for lineno, key in ((5, "{not json"), (6, "gone"), (7, "empty"), (8, "oov")):
        assert f"line {lineno}" in log and key in log, (lineno, key)
    assert "broken" in log and "liar" in log
    assert "bad training data skipped or corrected" in log
    assert checkpoint.load(out / "model.pt")["step"] == 2  # 4 good + the corrected one (+ the broken one, dropped in its batch)


def test_sigterm_stops_after_the_step_with_a_checkpoint_that_resumes(corpus, tmp_path):
    # a run that would go on for 1000 epochs, with a data worker process: SIGTERM to the whole process group (as
    # `timeout` and batch schedulers send it) ends it cleanly
    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "funasr.bin.train", *args(corpus, out, "++train_conf.max_epoch=1000",
           "++dataset_conf.num_workers=1", "++train_conf.avg_nbest_model=0")]
    run = subprocess.Popen(cmd, env=_recipe_env(), stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = []
    try:
        for line in run.stderr:
            log.append(line)
            if re.search(r"epoch 2 step \d+:", line):
                os.killpg(run.pid, signal.SIGTERM)
                break
        log.extend(run.stderr)
        assert run.wait(timeout=120) == 0, "".join(log[-20:])
    finally:
        run.kill()
    text = "".join(log)
    stop = re.search(r"stopped at epoch (\d+) step (\d+)", text)
    assert stop, text[-3000:]
    epoch, step = int(stop.group(1)), int(stop.group(2))
    saved = checkpoint.load(out / "model.pt")
    assert saved["step"] == step and saved["epoch"] == epoch
    assert (out / f"model.pt.ep{epoch}.{step}").is_file()
    # the same command, now with an end in sight, goes on from the saved step
    again = train(load_config(args(corpus, out, f"++train_conf.max_epoch={epoch + 1}", "++train_conf.avg_nbest_model=0")))
    steps = [h[0] for h in history(again)]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] > step  # every step once, none lost or repeated
    assert checkpoint.load(again / "model.pt")["epoch"] == epoch + 2
