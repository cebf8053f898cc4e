""".ci/venv and .ci/system-deps, what `make venv|demo|test` run to set a bare machine up, on a tiny project in a
temp folder: a venv is trusted only once its stamp (written last) names the extras asked for, a half-built one
is rebuilt, extras are added to a finished one, a Python that cannot hold the extras stops at once in one line;
and python3-venv counts as missing when ensurepip is (`python3 -m venv --help` works without it)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repo import ROOT

TINY_SETUP = """[metadata]
name = tiny
version = 0.1
[options]
packages = tiny
[options.extras_require]
a =
b =
cpu =
missing =
    tinydep @ file:///nonexistent/tinydep
"""


@pytest.fixture
def project(tmp_path):
    """A checkout of a tiny package whose extras install nothing, with the set-up scripts."""
    (tmp_path / ".ci").mkdir()
    for script in ("venv", "system-deps"):
        shutil.copy(ROOT / ".ci" / script, tmp_path / ".ci" / script)
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61"]\n'
                                             'build-backend = "setuptools.build_meta"\n')
    (tmp_path / "setup.cfg").write_text(TINY_SETUP)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "__init__.py").write_text("")
    return tmp_path


def venv(project, required, optional="", python=sys.executable, **env):
    return subprocess.run(["bash", ".ci/venv", "v", required, optional], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": python, "TORCH_SPEC": "", **env}, timeout=600)


def stamp(project) -> dict:
    return dict(line.split("=", 1) for line in (project / "v" / ".installed").read_text().splitlines())


@pytest.mark.slow  # three venvs: about half a minute
def test_a_venv_is_stamped_last_completed_with_new_extras_and_rebuilt_when_half_built(project):
    built = venv(project, "a")
    assert built.returncode == 0, built.stderr
    assert stamp(project)["extras"] == "a"
    assert subprocess.run([project / "v" / "bin" / "python", "-c", "import tiny"], cwd="/").returncode == 0

    again = venv(project, "a")  # nothing to do: no install, no output
    assert again.returncode == 0 and again.stderr == ""

    more = venv(project, "b")  # a later target asks for another extra: added, the stamp names both
    assert more.returncode == 0 and "installing .[a,b] into v" in more.stderr, more.stderr
    assert stamp(project)["extras"] == "a,b"

    broken = venv(project, "missing")  # an extra pip cannot install (a path that is not there): stops half-way
    assert broken.returncode == 1 and "pip could not install" in broken.stderr, broken.stderr
    assert not (project / "v" / ".installed").exists()
    rebuilt = venv(project, "a")  # never trusted: removed and built again
    assert rebuilt.returncode == 0 and "an install that did not finish" in rebuilt.stderr, rebuilt.stderr
    assert stamp(project)["extras"] == "a"


def test_a_venv_make_did_not_build_is_left_alone(project):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project / "v")], check=True)
    refused = venv(project, "a")
    assert refused.returncode == 1 and "was not built by make" in refused.stderr, refused.stderr
    assert (project / "v" / "bin" / "python").exists()


@pytest.mark.slow
def test_an_optional_extra_is_added_only_where_the_python_can_hold_it(project):
    built = venv(project, "a", "cpu")  # cpu (MXNet 1.9.1) needs Python <= 3.11
    assert built.returncode == 0, built.stderr
    expected = "a,cpu" if sys.version_info < (3, 12) else "a"
    assert stamp(project)["extras"] == expected


def test_a_python_that_cannot_hold_the_extras_stops_at_once_in_one_line(project, tmp_path):
    fake = tmp_path / "python3.12"  # any interpreter that says it is 3.12
    fake.write_text("#!/bin/sh\necho 12\n")
    fake.chmod(0o755)
    refused = venv(project, "cpu", python=str(fake))
    assert refused.returncode == 1 and not (project / "v").exists()
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "Python 3.9-3.11" in refused.stderr and "pyenv install 3.11" in refused.stderr \
        and "uv python install 3.11" in refused.stderr


def test_a_given_venv_is_checked_never_installed_into(project):
    refused = venv(project, "a", VENV_CHECK_ONLY="1")
    assert refused.returncode == 1 and "VENV=v has no bin/python" in refused.stderr
    assert not (project / "v").exists()


def test_python3_without_ensurepip_needs_python3_venv(project, tmp_path):
    def missing_with(python3_body: str) -> list:
        bin_dir = tmp_path / "bin"
        shutil.rmtree(bin_dir, ignore_errors=True)
        bin_dir.mkdir()
        (bin_dir / "python3").write_text(f"#!/bin/sh\n{python3_body}\n")
        (bin_dir / "python3").chmod(0o755)
        listed = subprocess.run(["bash", ".ci/system-deps", "--list"], cwd=project, capture_output=True, text=True,
                                env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.split()

    shadow = tmp_path / "no-ensurepip" / "ensurepip"  # Debian's python3 without python3-venv: venv imports,
    shadow.mkdir(parents=True)                          # `-m venv --help` works, ensurepip is absent
    (shadow / "__init__.py").write_text("raise ImportError('ensurepip is not installed')\n")
    assert "python3-venv" in missing_with(f'PYTHONPATH={shadow.parent} exec "{sys.executable}" "$@"')
    assert subprocess.run([str(tmp_path / "bin" / "python3"), "-m", "venv", "--help"],
                          capture_output=True).returncode == 0  # what the check used to ask: it passed
    assert "python3-venv" not in missing_with(f'exec "{sys.executable}" "$@"')
