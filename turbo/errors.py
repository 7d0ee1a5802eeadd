"""Errors a user can act on. The CLI prints their message and exits with the error's exit code.

Exit codes (README, "Errors and exit codes"): 0 success; 2 the settings, data, paths or model do not
fit (nothing was trained); 3 a training run diverged (the loss or gradient norm stopped being a
finite number): the checkpoints saved before it are kept and no final model is written.
"""

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class TurboError(Exception):
    """Base class: the message alone tells the user what to fix."""

    exit_code = EXIT_BAD_INPUT


class SettingsError(TurboError):
    """An experiment or inference file that does not validate."""


class DataError(TurboError):
    """A dataset file or record that cannot be used (names file:line where it can)."""


class ModelError(TurboError):
    """A model, tokenizer or adapter that cannot be loaded or does not fit the settings."""


class TrainingDivergedError(TurboError):
    """The loss or gradient norm of a run is NaN or infinite: the run stops, nothing is saved as final."""

    exit_code = EXIT_DIVERGED


class RunComplete(Exception):
    """Not an error: a resumed run that has nothing left to train. The CLI prints it and exits 0."""
