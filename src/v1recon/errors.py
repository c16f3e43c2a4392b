"""The one exception type users see: a single sentence naming the file and what is wrong with it."""


class V1ReconError(Exception):
    """Bad input or a refused operation; the CLI prints the message and exits with status 2."""
