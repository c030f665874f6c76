"""User-facing errors: the CLI prints them as one line and exits with status 2."""


class LabError(Exception):
    """Bad input or an unusable environment; the message says what is wrong and how to fix it."""
