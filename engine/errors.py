"""The one exception type the engine raises for problems a user can fix.

Its message is a sentence for a GIS analyst: which file, what was expected, what was found, and what
to do. The CLI prints it without a traceback; the plugin turns it into a QgsProcessingException.
"""


class FbpError(Exception):
    """A problem with the user's input, files or settings, explained in one sentence."""


class CancelledError(FbpError):
    """The user cancelled; nothing half-written was left behind."""

    def __init__(self, message: str = "Cancelled by the user; no output was written.") -> None:
        super().__init__(message)
