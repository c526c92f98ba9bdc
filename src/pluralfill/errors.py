"""The one exception type whose message is meant for the user."""


class PluralfillError(Exception):
    """Bad input or a missing resource: the CLI prints the message on one line and exits non-zero."""
