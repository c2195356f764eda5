"""Batch plans for the CPU: within the user's bounds, deterministic given a calibration, and the same results as one at a time."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import AUDIO, RUNTIME, auto, exported, model_path

sys.path.insert(0, str(RUNTIME))

import funasr_onnx  # noqa: E402
from funasr import AutoModel  # noqa: E402
from funasr.audio import AudioItem  # noqa: E402
from funasr.planner import ONE_AT_A_TIME, CostModel, calibrations_file, concurrent_runs, cost_model, plan_batches

# A calibration as the PyTorch Paraformer-large gives on a 2-core AVX2 EPYC (seconds).
LARGE = CostModel(call_s=0.03, frame_s=6e-4, pair_s=4e-7, max_frames=1100, frame_ms=60)
DURATIONS = [int(d) for d in np.random.default_rng(0).uniform(300, 20000, 200)] + [65000, 1500, 1500]


def _padded_ms(batch):
    return max(DURATIONS[i] for i in batch) * len(batch)


def test_plan_stays_within_batch_size_s_threshold_and_frame_cap():
    for budget_s in (0.5, 1, 20, 60, 300):
        plan = plan_batches(DURATIONS, 1000 * budget_s, 60000, LARGE)
        assert sorted(i for b in plan for i in b) == list(range(len(DURATIONS)))
        for b in plan:
            assert len(b) == 1 or _padded_ms(b) <= 1000 * budget_s
            assert len(b) == 1 or LARGE.frames(max(DURATIONS[i] for i in b)) * len(b) <= LARGE.max_frames
        assert [DURATIONS.index(65000)] in plan  # past batch_size_threshold_s: alone


def test_plan_is_deterministic_and_no_batch_is_predicted_slower_than_one_by_one():
    plan = plan_batches(DURATIONS, 300000, 60000, LARGE)
    assert plan == plan_batches(DURATIONS, 300000, 60000, LARGE)
    assert any(len(b) > 1 for b in plan)
    for b in plan:
        longest = LARGE.frames(max(DURATIONS[i] for i in b))
        assert LARGE.cost(len(b), longest) <= sum(LARGE.cost(1, LARGE.frames(DURATIONS[i])) for i in b)


def test_plan_follows_the_cost_model():
    # no per-call cost: padding only loses, so nothing of unequal length is batched
    free_calls = CostModel(call_s=0.0, frame_s=1e-3, pair_s=0.0, max_frames=10**6, frame_ms=60)
    plan = plan_batches(DURATIONS, 300000, 60000, free_calls)
    assert all(len({LARGE.frames(DURATIONS[i]) for i in b}) == 1 for b in plan)
    # costly calls and no cache limit: the plan is as large as batch_size_s allows, as greedy packing
    costly_calls = CostModel(call_s=100.0, frame_s=1e-3, pair_s=0.0, max_frames=10**6, frame_ms=60)
    assert len(plan_batches(DURATIONS, 300000, 60000, costly_calls)) == len(plan_batches(DURATIONS, 300000, 60000, None))
    # the frame cap splits what batch_size_s alone would allow
    assert len(plan_batches(DURATIONS, 300000, 60000, LARGE)) > len(plan_batches(DURATIONS, 300000, 60000, costly_calls))


@pytest.mark.parametrize("name", ["paraformer_tiny", "contextual_paraformer_tiny"])
def test_calibration_once_per_model_engine_and_threads(name):
    task = auto(name).task
    model = cost_model(task)
    assert model is cost_model(task)  # cached: measured once
    assert model.frame_ms == 60 and model.max_frames >= 1
    assert all(np.isfinite(v) and v >= 0 for v in (model.call_s, model.frame_s, model.pair_s))


NEXT_PROCESS = """
import dataclasses, json, sys
from funasr import AutoModel
from funasr.planner import cost_model
task = AutoModel(model=sys.argv[1], device="cpu", ncpu=1, disable_pbar=True).task
print(json.dumps(dataclasses.asdict(cost_model(task))))
"""


def test_a_calibration_is_kept_on_disk_for_the_next_process(tmp_path):
    env = {**os.environ, "FUNASR_CACHE": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", NEXT_PROCESS, str(model_path("paraformer_tiny"))], env=env,
                           capture_output=True, text=True, check=True)
    stored = json.loads((tmp_path / "planner.json").read_text())
    (key,) = stored
    assert stored[key] == json.loads(first.stdout.splitlines()[-1])
    stored[key]["max_frames"] = 7  # a next process that calibrated again would not see this
    (tmp_path / "planner.json").write_text(json.dumps(stored))
    second = subprocess.run([sys.executable, "-c", NEXT_PROCESS, str(model_path("paraformer_tiny"))], env=env,
                            capture_output=True, text=True, check=True)
    assert json.loads(second.stdout.splitlines()[-1]) == stored[key]
    assert calibrations_file().parent != tmp_path  # this process keeps the session's cache folder


def test_file_batches_of_a_hotword_model_equal_one_at_a_time():
    files = [str(p) for p in sorted(AUDIO.glob("*.wav"))]
    model = auto("contextual_paraformer_tiny")
    assert model.generate(input=files, batch_size=len(files)) == model.generate(input=files, batch_size=1)


def test_a_batch_decodes_as_its_segments_one_by_one():
    task = auto("bicif_paraformer_tiny").task
    wav = sf.read(AUDIO / "pub_concat.wav", dtype="float32")[0]
    items = [AudioItem(f"s{i}", wav[s : s + n]) for i, (s, n) in enumerate([(0, 9000), (20000, 40000), (50000, 16000), (90000, 70000)])]
    assert task(items) == [task([item])[0] for item in items]


@pytest.fixture(scope="module")
def chain():
    return AutoModel(model=str(model_path("bicif_paraformer_tiny")), vad_model=str(model_path("fsmn-vad")),
                     punc_model=str(model_path("ct_punc_tiny")), disable_pbar=True)


def test_planned_pipeline_equals_one_segment_at_a_time(chain):
    wav = str(AUDIO / "pub_concat.wav")
    (one,) = chain.generate(input=wav, batch_size_s=0)
    for budget in (300, 20):
        (planned,) = chain.generate(input=wav, batch_size_s=budget)
        assert planned == one


def test_planned_file_batches_equal_one_file_at_a_time():
    files = [str(p) for p in sorted(AUDIO.glob("*.wav"))]
    model = auto("paraformer_tiny")
    assert model.generate(input=files, batch_size=len(files)) == model.generate(input=files, batch_size=1)


def test_torch_free_runtime_plans_the_same_way(export_root):
    asr, vad = exported(export_root, "bicif_paraformer_tiny"), exported(export_root, "fsmn-vad")
    wav, files = str(AUDIO / "pub_concat.wav"), [str(p) for p in sorted(AUDIO.glob("*.wav"))]
    fp32 = funasr_onnx.AutoModel(model=str(asr), vad_model=str(vad), disable_pbar=True)
    assert cost_model(fp32.task) is cost_model(fp32.task) is not ONE_AT_A_TIME
    assert fp32.generate(input=wav, batch_size_s=300) == fp32.generate(input=wav, batch_size_s=0)
    # int8 graphs scale activations per batch: planned one at a time, so results stay those of one at a time
    int8 = funasr_onnx.AutoModel(model=str(asr), quantize=True, disable_pbar=True)
    assert cost_model(int8.task) is ONE_AT_A_TIME
    assert plan_batches([1000, 1000, 2000], 300000, 60000, ONE_AT_A_TIME) == [[0], [1], [2]]
    assert int8.generate(input=files, batch_size=len(files)) == int8.generate(input=files, batch_size=1)


def test_onnx_segments_two_at_a_time_give_one_at_a_time_results(export_root, chain):
    asr, vad = exported(export_root, "bicif_paraformer_tiny"), exported(export_root, "fsmn-vad")
    wav = str(AUDIO / "pub_concat.wav")
    one, two = (funasr_onnx.AutoModel(model=str(asr), vad_model=str(vad), quantize=True, intra_op_num_threads=n, disable_pbar=True)
                for n in (1, 2))
    assert concurrent_runs(one.task) == 1 and concurrent_runs(two.task) == 2 and concurrent_runs(chain.task) == 1
    assert two.generate(input=wav, sentence_timestamp=True) == one.generate(input=wav, sentence_timestamp=True)
