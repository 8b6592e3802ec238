"""Errors a researcher can act on. Each message names the config key, file, row or model at fault."""


class StudyError(Exception):
    """Base class: a problem with the study's inputs, reported without a traceback-worthy bug."""


class ConfigError(StudyError):
    """The config is invalid. The message starts with the offending key."""


class DatasetError(StudyError):
    """A dataset file or source is unusable. The message names the dataset, file and row."""


class ModelError(StudyError):
    """A model cannot be found or loaded. The message names the model and how to provide it."""


class OutputError(StudyError, OSError):
    """An output cannot be written (disk full, no permission). The message names the file; any
    previous version of it is left as it was. Still an OSError, with the original errno."""
