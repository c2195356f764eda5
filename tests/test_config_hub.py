"""Config precedence, model name resolution, the Hugging Face cache and offline mode."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUNDLED_VAD, MODELS, ROOT
from funasr.config import resolve_model_dir
from funasr.errors import ConfigError, ModelNotFoundError
from funasr.hub import resolve_model
from hf_cache import add_to_hf_cache

TINY = MODELS / "paraformer_tiny"


def test_config_gets_absolute_paths_from_files():
    cfg = resolve_model_dir(TINY)
    assert cfg["model"] == "Paraformer"
    assert cfg["init_param"] == str(TINY / "model.pt")
    assert cfg["tokenizer_conf"]["token_list"] == str(TINY / "tokens.json")
    assert cfg["frontend_conf"]["cmvn_file"] == str(TINY / "am.mvn")
    assert cfg["frontend_conf"]["lfr_m"] == 7


def test_configuration_json_metas_and_user_kwargs_win(tmp_path):
    for f in BUNDLED_VAD.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "other.mvn").write_bytes((BUNDLED_VAD / "am.mvn").read_bytes())
    meta = json.loads((tmp_path / "configuration.json").read_text())
    meta["file_path_metas"]["frontend_conf"]["cmvn_file"] = "other.mvn"
    (tmp_path / "configuration.json").write_text(json.dumps(meta))
    cfg = resolve_model_dir(tmp_path)
    assert cfg["frontend_conf"]["cmvn_file"] == str(tmp_path / "other.mvn")  # metas over file conventions
    (tmp_path / "x.mvn").write_bytes((BUNDLED_VAD / "am.mvn").read_bytes())
    cfg = resolve_model_dir(tmp_path, {"frontend_conf": {"cmvn_file": "x.mvn"}, "max_single_segment_time": 2000})
    assert cfg["frontend_conf"]["cmvn_file"] == str(tmp_path / "x.mvn")  # user over metas
    assert cfg["frontend_conf"]["lfr_m"] == 5  # the rest of the section is kept
    assert cfg["model_conf"]["max_single_segment_time"] == 2000  # top-level kwargs configure the model


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ConfigError, match="no config.yaml"):
        resolve_model_dir(tmp_path)


def test_unreadable_config(tmp_path):
    (tmp_path / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=str(tmp_path / "config.yaml")):
        resolve_model_dir(tmp_path)


def test_local_directory_and_bundled_models():
    assert resolve_model(str(TINY)) == TINY.resolve()
    for name in ("fsmn-vad", "paraformer-zh-small", "ct-punc-zh-small"):
        folder = resolve_model(name)
        assert folder.parent.name == "assets" and (folder / "model.pt").is_file() and (folder / "config.yaml").is_file()


def test_unknown_model_name():
    with pytest.raises(ModelNotFoundError, match="'paraformer-xx'.*known name"):
        resolve_model("paraformer-xx")


def test_unknown_hub():
    with pytest.raises(ModelNotFoundError, match="unknown hub"):
        resolve_model("paraformer-zh", hub="github")


def test_modelscope_needs_its_package():
    try:
        import modelscope  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ModelNotFoundError, match="pip install modelscope"):
            resolve_model("paraformer-zh", hub="ms")
    else:
        pytest.skip("modelscope is installed here")


def _run(code: str, cache: Path, offline: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf-cache")
    add_to_hf_cache(cache, "funasr/paraformer-zh", TINY)
    return cache


def test_built_cache_is_valid_for_huggingface_hub(hf_cache):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hf_cache)
    assert [r.repo_id for r in info.repos] == ["funasr/paraformer-zh"] and not info.warnings


@pytest.mark.parametrize("offline", [True, False])
def test_short_name_loads_from_the_cache(hf_cache, offline):
    proc = _run("from funasr.hub import resolve_model; print(resolve_model('paraformer-zh'))", hf_cache, offline)
    assert proc.returncode == 0, proc.stderr
    snapshot = Path(proc.stdout.strip())
    assert snapshot.parent.parent.name == "models--funasr--paraformer-zh" and (snapshot / "model.pt").is_file()


def test_missing_model_offline_says_how_to_get_it(hf_cache):
    code = "from funasr.hub import resolve_model\ntry:\n resolve_model('ct-punc')\nexcept Exception as e:\n print(type(e).__name__, e)"
    proc = _run(code, hf_cache, offline=True)
    out = proc.stdout
    assert "ModelNotFoundError" in out and "'ct-punc'" in out and "funasr/ct-punc" in out
    assert "not in the local cache" in out and "hf download funasr/ct-punc" in out and "local model directory" in out
    assert "'ct-punc-zh-small' (bundled)" in out  # offered, never substituted
