"""Errors meant for the user: one line, naming what is wrong. The CLI prints them without a traceback."""


class CopilotError(Exception):
    exit_code = 2


class AudioInputError(CopilotError):
    """A file or device that cannot be read as audio."""


class ModelError(CopilotError):
    """An unknown, missing or corrupt model."""


class RubricError(CopilotError):
    """A rubric file that does not validate."""


class SessionError(CopilotError):
    """An unknown session, or an operation the session's state refuses."""
