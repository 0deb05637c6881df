"""Interview copilot: a local-first copilot for interviewers."""

__version__ = "0.1.0"
