"""One family of errors for what a user asked that cannot be done as asked.

The CLI prints a `UserError` as one line and exits 2; anything else is a bug and shows
its traceback. Each subclass also derives from the built-in error a Python caller would
catch (ValueError, FileNotFoundError, ...), so library users need not learn new types.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a config, data, a name, a path or a request that cannot be honoured."""


class ConfigError(UserError, ValueError):
    """A config file, override or search space that does not fit the schema."""


class DataError(UserError, ValueError):
    """A data file or folder is missing, unreadable or not what was expected."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or weights file that cannot be read or does not fit."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output would replace something the user did not ask to replace."""


class UsageError(UserError, ValueError):
    """A request (flags, arguments, state of a store) that cannot be honoured as given."""


class UnknownNameError(UserError, KeyError, ValueError):
    """A name that is not in a registry; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])
