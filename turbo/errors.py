"""Errors a user can act on. The CLI prints their message and exits with code 2."""


class TurboError(Exception):
    """Base class: the message alone tells the user what to fix."""


class SettingsError(TurboError):
    """An experiment or inference file that does not validate."""


class DataError(TurboError):
    """A dataset file or record that cannot be used (names file:line where it can)."""


class ModelError(TurboError):
    """A model, tokenizer or adapter that cannot be loaded or does not fit the settings."""


class RunComplete(Exception):
    """Not an error: a resumed run that has nothing left to train. The CLI prints it and exits 0."""
