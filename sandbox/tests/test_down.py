"""`mlops-sandbox down` stops every part even when one cannot go down (no sandbox needed:
the parts are stand-ins that record the order they were asked in)."""

from __future__ import annotations

import dataclasses

import pytest

from mlops_sandbox import cli
from mlops_sandbox.config import Config
from mlops_sandbox.process import SandboxError


class Part:
    def __init__(self, name: str, asked: list[str], fails: bool = False):
        self.name, self.asked, self.fails = name, asked, fails

    def down(self) -> str:
        self.asked.append(self.name)
        if self.fails:
            raise SandboxError(f"could not remove Docker objects of sandbox t: network {self.name}")
        return f"{self.name} stopped"


def test_a_part_that_cannot_go_down_does_not_keep_the_others_up(monkeypatch, tmp_path, capsys):
    asked: list[str] = []
    parts = [Part("moto", asked), Part("ssm", asked), Part("fleet", asked, fails=True)]
    monkeypatch.setattr(cli, "components", lambda _config: parts)
    config = dataclasses.replace(Config(), env_file=tmp_path / "env")
    config.env_file.write_text("AWS_ENDPOINT_URL=x\n")
    with pytest.raises(SandboxError, match="down left something behind: could not remove Docker objects"):
        cli._lifecycle("down", config)
    assert asked == ["fleet", "ssm", "moto"]  # reverse start order, all of them
    assert not config.env_file.exists()
    out = capsys.readouterr().out
    assert "sandbox: ssm stopped" in out
    assert "sandbox: moto stopped" in out


def test_down_says_nothing_more_when_every_part_went_down(monkeypatch, tmp_path):
    asked: list[str] = []
    monkeypatch.setattr(cli, "components", lambda _config: [Part("moto", asked), Part("fleet", asked)])
    cli._lifecycle("down", dataclasses.replace(Config(), env_file=tmp_path / "env"))
    assert asked == ["fleet", "moto"]
