"""The `v1recon` command. Each sub-command lives in its own module under `v1recon.commands` and registers
itself on `app`; heavy imports stay inside the command functions so that `--help` is quick."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from v1recon.errors import V1ReconError

app = typer.Typer(
    name="v1recon",
    help="Reconstruct the movie a mouse saw from V1 population activity (Sensorium 2023 recordings or the "
    "in-silico mouse).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    import v1recon.commands as commands

    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"v1recon.commands.{module.name}")


def main() -> None:
    from v1recon.io import WRITE_ERRORS, shown_path

    _register_commands()
    try:
        app()
    except V1ReconError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except OSError as err:  # a full disk or a read-only or forbidden folder outside an atomic write
        if err.errno not in WRITE_ERRORS:
            raise
        where = shown_path(err.filename) if err.filename else "an output file"
        typer.echo(f"error: {where}: {err.strerror}.", err=True)
        sys.exit(2)
