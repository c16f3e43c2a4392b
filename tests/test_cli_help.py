"""Every command's --help runs and prints its option texts whole (rich markup once swallowed '[default: ...]')."""

import re

import pytest
from typer.testing import CliRunner

from v1recon.cli import _register_commands, app

_register_commands()

COMMANDS = [
    ["simulate"], ["train"], ["evaluate"], ["mask"], ["reconstruct"], ["report"], ["demo"],
    ["analyse", "resolution-noise"], ["analyse", "gratings"], ["analyse", "population"], ["analyse", "ensemble-size"],
    ["analyse", "masks"], ["analyse", "upper-bounds"], ["analyse", "rf-mapping"], ["analyse", "baselines"],
    ["import", "nwb"], ["import", "suite2p"], ["export", "nwb"], ["stream"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_is_complete(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "250", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    # a help text that lost a bracketed remark ends in " ." (the remark was eaten, its full stop left behind)
    assert not re.search(r"\w \.(\s|$)", result.output), result.output
    # an install hint keeps its extra: rich markup would read '.[ray]' as a style tag and print '.'
    assert "-e '.'" not in re.sub(r"[\s│]+", " ", result.output), result.output


def test_demo_help_shows_the_config_defaults():
    from v1recon.demo import DemoConfig

    result = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "250", "TERM": "dumb"})
    assert f"[default: {DemoConfig().train_minutes}]" in result.output


def test_stream_help_shows_the_reconstructor_defaults():
    from v1recon.commands.stream import STEPS, WINDOW
    from v1recon.recon.streaming import StreamSettings

    assert (WINDOW, STEPS) == (StreamSettings().window, StreamSettings().steps)


def test_registering_the_commands_leaves_pynwb_unimported():
    """The core install stays free of pynwb: only the NWB code paths import it."""
    import subprocess
    import sys

    code = "import sys; from v1recon.cli import _register_commands; _register_commands(); print('pynwb' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
