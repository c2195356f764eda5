"""The exceptions users catch: each message names the input and the fix."""


class FunASRError(Exception):
    """Base class of every error funasr raises on purpose."""


class AudioError(FunASRError):
    """An audio input that is missing, undecodable or empty."""


class ModelNotFoundError(FunASRError):
    """An unknown model name, or a model that is not in the local cache while offline."""


class ConfigError(FunASRError):
    """A config.yaml / configuration.json that cannot be read or is incomplete."""


class CheckpointError(FunASRError):
    """A checkpoint or exported graph that cannot be read, or whose weights do not fit the model built from its config."""


class HotwordError(FunASRError):
    """A hotword file or URL that cannot be read."""


class ExportError(FunASRError):
    """An export that cannot be done here (missing package, unsupported model)."""


class OptionError(FunASRError, ValueError):
    """An argument of ``AutoModel(...)`` / ``generate(...)`` with a value that is not allowed."""
