"""Domain errors: each carries a one-line message fit to show a user as it is."""


class LabError(Exception):
    """Base class for errors the CLI and web app report without a traceback."""


class ConfigError(LabError):
    """A setting, config file or command-line value is invalid."""


class NotFoundError(LabError):
    """A referenced object (run, checkpoint, prompt set, rater...) does not exist."""


class InputFileError(LabError):
    """An input file is malformed; the message names the line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class ConflictError(LabError):
    """The request clashes with existing state (duplicate, already done, not yours)."""


class PermissionDeniedError(LabError):
    """The current user may not do this."""
