"""Options that several commands share (the executor of their tasks, the device)."""

from __future__ import annotations

import typer

DEVICE_OPT = typer.Option("auto", "--device", help="auto (GPU if present), cpu, cuda or cuda:N (default: auto).")
EXECUTOR_OPT = typer.Option(
    "local",
    "--executor",
    help="Who runs the job's tasks: local (one after another in this process; default) or ray (as many at once as "
    "a Ray cluster's workers allow, one CPU or GPU each; needs pip install -e '.\\[ray]'). Same results either way.",
)
ADDRESS_OPT = typer.Option(
    None,
    "--address",
    help="With --executor ray: 'auto' or HOST:PORT of a running Ray cluster to join (default: start a local cluster "
    "on this machine for the job).",
)
