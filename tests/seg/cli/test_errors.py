"""One error mapper for every `seg` command: one line for expected failures, what to install for a missing
extra, and for a bug a hint without -v and the traceback with it. Real subprocesses throughout."""
import configparser
import re
import subprocess
import sys

import click
import pytest

from repo import ROOT
from seg.cli.errors import as_flags
from seg.errors import EXTRA_MODULES, missing_extra
from synthdata import write_layout


def seg(*args, before=""):
    """`seg ARGS` in a fresh interpreter; `before` runs first (to hide a module or plant a bug)."""
    code = f"{before}\nfrom seg.cli import main\nmain(prog_name='seg')"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


def test_expected_error_is_one_line_naming_the_flag_and_exit_1():
    result = seg("pipe-check", "any.manifest", "--attribute-names", "source-ref,mask-ref", "--num-classes", "300")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["Error: --num-classes 300: must be 1..255"]


def test_oserror_naming_a_file_is_one_line(tmp_path):
    dest = tmp_path / "file"
    dest.write_text("")
    manifest = tmp_path / "output.manifest"
    manifest.write_text('{"source-ref": "a.jpg"}\n')
    result = seg("job-manifest", manifest, dest / "under-a-file.manifest")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ") and str(dest) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("module, command", [
    ("mxnet", ["train", "--engine", "mxnet", "--data", "{tmp}/data", "--model-dir", "{tmp}/m"]),
    ("gunicorn", ["serve", "{tmp}"])])
def test_missing_extra_says_what_to_install(tmp_path, module, command):
    write_layout(tmp_path / "data", n_train=2, n_val=1, size=16)  # valid data: the engine is what is missing
    result = seg(*[arg.format(tmp=tmp_path) for arg in command], before=f"import sys; sys.modules[{module!r}] = None")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"this needs {module}" in result.stderr
    assert "from a checkout of gt2seg: pip install -e '.[cpu]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if module == "mxnet":  # an engine: which Pythons its extra installs on, and this one
        here = "%d.%d" % sys.version_info[:2]
        assert "the 'cpu' extra installs on Python 3.9 to 3.11" in result.stderr
        assert f"(this is Python {here})" in result.stderr
        assert not (tmp_path / "m").exists()


def test_the_extra_a_missing_module_names_is_in_setup_cfg_and_installs_that_module():
    """gt2seg is not on the package index: the hint is an editable install of one of setup.cfg's extras, and
    that extra must list the distribution of every module the error can be about."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extras = config["options.extras_require"]
    for module, (distribution, extra) in EXTRA_MODULES.items():
        error = missing_extra(ModuleNotFoundError(f"No module named {module!r}", name=module))
        assert (error.module, error.extra) == (distribution, extra)
        command = re.search(r"pip install -e '\.\[(\w+)\]'", str(error))
        assert command and str(error).endswith(f"from a checkout of gt2seg: {command.group(0)}"), str(error)
        assert command.group(1) in extras, f"{module}: setup.cfg has no {command.group(1)!r} extra"
        listed = [re.split(r"[<>=!~\[ ]", line.strip())[0] for line in extras[command.group(1)].split("\n")]
        assert distribution in listed, f"{module}: {distribution} is not in the {command.group(1)!r} extra"


BUG = "import seg.jobs.snapshot as s\ndef broken(*a): raise RuntimeError('boom')\ns.snapshot_manifest = broken"


def test_unexpected_error_is_called_a_bug_with_the_way_to_its_traceback(tmp_path):
    result = seg("job-manifest", tmp_path / "job", tmp_path / "dest", before=BUG)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unexpected RuntimeError: boom" in result.stderr and "seg -v" in result.stderr


def test_unexpected_error_keeps_its_traceback_with_verbose(tmp_path):
    result = seg("-v", "job-manifest", tmp_path / "job", tmp_path / "dest", before=BUG)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "RuntimeError: boom" in result.stderr


def test_as_flags_rewrites_only_the_commands_own_options():
    command = click.Command("x", params=[click.Option(["--fifo-dir"]), click.Option(["--role", "role_arn"]),
                                         click.Argument(["layout"])])
    message = "fifo_dir=/a is missing; pass role_arn=arn:x; layout=b; other_fifo_dir=c; backbone=resnet-18"
    assert as_flags(message, command) == ("--fifo-dir /a is missing; pass --role arn:x; layout=b; other_fifo_dir=c; "
                                          "backbone=resnet-18")
