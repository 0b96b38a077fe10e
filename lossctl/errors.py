"""One exception family for lossctl; the CLI maps each to an exit code."""

from __future__ import annotations

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class LossctlError(Exception):
    """Base of every error lossctl raises on purpose. `str(err)` is the one line shown to the user."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, option: str | None = None, source: str | None = None):
        self.message = message
        self.option = option
        self.source = source
        prefix = ""
        if option:
            prefix = f"{option}"
            if source and source != option:
                prefix += f" ({source})"
            prefix += ": "
        super().__init__(prefix + message)

    def with_source(self, source: str) -> LossctlError:
        """The same error, now also naming the file (or `literal`) its option was read from."""
        return type(self)(self.message, option=self.option, source=source)


class InputError(LossctlError):
    """A file, literal or stream could not be read as an array."""


class MissingKeyError(InputError):
    """FILE:KEY where the file holds no such key, column or tensor."""


class ShapeError(LossctlError):
    """Arrays whose shapes do not fit the loss."""


class ValueRangeError(LossctlError):
    """An array holds a value the loss cannot take (NaN, an out-of-range class, ...)."""


class ComputeError(ValueRangeError):
    """torch refused inputs that the loss's own checks let through; a backstop, so no traceback escapes."""


class UsageError(LossctlError):
    """Options that contradict each other or name nothing known."""


class StrictWarningError(LossctlError):
    """A warning promoted to an error by --strict."""


class ClusterError(LossctlError):
    """The Dask scheduler could not be reached, or a worker failed for a reason other than the inputs."""
