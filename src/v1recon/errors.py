"""The one exception type users see: a single sentence naming the file and what is wrong with it."""


class V1ReconError(Exception):
    """Bad input or a refused operation; the CLI prints the message and exits with status 2."""


class OutputError(V1ReconError, OSError):
    """A result could not be written (full disk, read-only or forbidden folder); still an OSError, so that code
    which tolerates an unwritable optional file (a cache) keeps doing so."""


def warn(message: str) -> None:
    """One line on stderr, `warning: ...`: the input was accepted after a small, stated correction."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)
