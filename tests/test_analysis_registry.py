"""The analyses registry: every analysis is plain data (a config dataclass with the published design), one module
with `run` and `draw`, and a command whose option defaults are the config's defaults."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import typer.main

from v1recon.cli import app
from v1recon.experiments import registry as R


def _command(name: str):
    analyse = typer.main.get_command(app).commands["analyse"]
    return analyse.commands[name]


@pytest.mark.parametrize("name", sorted(R.ANALYSES))
def test_every_analysis_has_a_module_with_one_run_signature(name):
    analysis = R.ANALYSES[name]
    module = analysis.load()
    params = list(inspect.signature(module.run).parameters)
    assert params[:4] == ["setup", "cfg", params[2], "settings"] and len(params) == 4
    assert callable(module.draw)
    assert getattr(module, "NAME", name) == name
    published = analysis.config.published()
    assert type(published) is analysis.config


@pytest.mark.parametrize("name", sorted(R.ANALYSES))
def test_the_command_defaults_are_the_config_defaults(name):
    config = R.ANALYSES[name].config()
    options = {p.name: p for p in _command(name).params}
    checked = 0
    for field in dataclasses.fields(config):
        if field.name not in options:
            continue
        default, value = options[field.name].default, getattr(config, field.name)
        if isinstance(value, tuple):
            default = tuple(float(x) for x in default.split(","))
        assert default == value, f"{name} --{field.name}: option default {default!r}, config {value!r}"
        checked += 1
    assert checked >= 1
    assert options["iterations"].default == R.Settings().iterations if "iterations" in options else True


def test_published_designs_are_the_papers():
    noise = R.ResolutionNoise.published()
    assert noise.spatial == noise.temporal == (0, 1, 2, 4, 8, 16, 32) and noise.repeats == 5 and noise.invert
    grating = R.Gratings.published()
    assert len(grating.sf) * len(grating.tf) * len(grating.directions) == 112
    assert R.Population.published().fractions == (1.0, 0.5, 0.25, 0.125)
    assert R.Population.published().frames == 0  # whole trials
    assert R.RFMapping.published().stride == 1
    assert R.Settings.published().iterations == 1000 and R.Settings.published().method == "paper"


def test_a_config_of_another_analysis_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(TypeError, match="Population"):
        R.run_analysis(tmp_path / "run", "population", R.Gratings())
    assert not (tmp_path / "run").exists()
