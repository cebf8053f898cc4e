"""What both command lines say about themselves: --version, and help that names only options the command has."""
import re
import subprocess
import sys
from importlib.metadata import version

import click
import pytest

from gt2seg.cli import main as gt2seg_main
from seg.cli import main as seg_main


def _commands(group, path):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, [*path, name])
        else:
            yield " ".join([*path, name]), command


COMMANDS = [*_commands(gt2seg_main, ["gt2seg"]), *_commands(seg_main, ["seg"])]


@pytest.mark.parametrize("name, command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_option_help_names_only_the_commands_own_options(name, command):
    """A flag in an option's help (outside `...`, where other commands are quoted) is one the command takes."""
    own = {flag for param in command.params for flag in (*param.opts, *param.secondary_opts)}
    named = {(param.name, flag) for param in command.params if isinstance(param, click.Option)
             for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", re.sub(r"`[^`]*`", "", param.help or ""))}
    assert {(option, flag) for option, flag in named if flag not in own} == set()


@pytest.mark.parametrize("name, command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_no_command_lets_an_unknown_option_through(name, command):
    """A misspelt option must be a usage error, never an argument passed on (what follows `--` excepted)."""
    assert not command.ignore_unknown_options and not command.allow_extra_args
    assert [p.name for p in command.params if isinstance(p, click.Argument) and p.type is click.UNPROCESSED] == []


@pytest.mark.parametrize("module, prog", [("gt2seg.cli", "gt2seg"), ("seg.cli", "seg")])
def test_version_is_the_installed_distributions(module, prog):
    result = subprocess.run([sys.executable, "-c", f"from {module} import main; main(prog_name={prog!r})",
                             "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(prog) and result.stdout.split()[-1] == version("gt2seg")
