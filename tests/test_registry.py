"""Model families: declarations found in funasr/models/*/family.py, and import errors that surface."""
from __future__ import annotations

import subprocess
import sys

import pytest

from funasr import registry
from conftest import BUNDLED_VAD, ROOT as REPO
from funasr.errors import ConfigError



def test_every_family_declaration_resolves():
    """Each family's task, engines, graphs and modules exist; no config name belongs to two families."""
    names = [m for f in registry.families() for m in f.models]
    assert len(names) == len(set(names))
    assert {"Paraformer", "SeacoParaformer", "CTTransformer", "FsmnVADStreaming"} <= set(names)
    for family in registry.families():
        registry.import_modules(family.modules)
        for ref in (family.task, family.torch_engine, family.onnx_engine, family.graphs):
            if ref is not None:
                assert callable(registry.resolve(ref)), ref
        for model in family.models:
            assert registry.lookup(model).__name__ == model
            assert registry.family_of(model) is family


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ConfigError, match="'NoSuchModel'.*Paraformer"):
        registry.family_of("NoSuchModel")


def test_a_broken_internal_import_raises(tmp_path, monkeypatch):
    """A module importing a funasr module that does not exist raises, instead of leaving its classes 'unknown'."""
    pkg = tmp_path / "broken_family"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("import funasr.models.no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="funasr.models.no_such_module"):
        registry.import_modules(("broken_family.model",))


def test_without_torch_the_torch_free_classes_resolve_and_torch_classes_say_why():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from funasr import registry\n"
        "from funasr.errors import ConfigError\n"
        "assert registry.lookup('WavFrontend').__name__ == 'WavFrontend'\n"
        "assert registry.family_of('Paraformer').onnx_engine\n"
        "try:\n"
        "    registry.lookup('Paraformer')\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "torch is not installed" in out and "'Paraformer'" in out


def test_engines_are_not_tasks():
    """Tasks take an engine; no engine class is also a task (funasr_onnx composes the two)."""
    for family in registry.families():
        task = registry.resolve(family.task)
        for ref in (family.torch_engine, family.onnx_engine):
            engine = registry.resolve(ref)
            assert not issubclass(engine, task) and not issubclass(task, engine), ref


def test_automodel_model_is_the_network_as_in_funasr():
    """FunASR code reading ``AutoModel(...).model`` gets the main ``nn.Module``; the task runs that same module."""
    import torch

    from funasr import AutoModel

    model = AutoModel(model=str(BUNDLED_VAD), disable_pbar=True)
    assert isinstance(model.model, torch.nn.Module)
    assert model.model is model.task.net.module
    assert type(model.model).__name__ == "FsmnVADStreaming"
