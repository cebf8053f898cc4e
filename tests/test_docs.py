"""The README is the command reference: every command and every long option of `gt2seg` and `seg` appears
in it, each option in a section that shows its command, so a new option cannot ship undocumented."""
import re

import click
import pytest

from gt2seg.cli import main as gt2seg_main
from repo import ROOT
from seg.cli import main as seg_main

README = (ROOT / "README.md").read_text()
SECTIONS = re.split(r"^#+ ", README, flags=re.M)  # text between headings of any level


def _flags(params):
    return [f for p in params for f in (*p.opts, *p.secondary_opts) if f.startswith("--")]


def _surface(group: click.Group, program: str):
    """(command, flag) for the group's own flags, then every command's, subgroups included."""
    yield from ((program, flag) for flag in _flags(group.params))
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _surface(command, f"{program} {name}")
            continue
        yield f"{program} {name}", None
        yield from ((f"{program} {name}", flag) for flag in _flags(command.params))


def _shows(text: str, command: str) -> bool:
    return f"{command} " in text or f"`{command}`" in text or f"{command}\n" in text


SURFACE = [*_surface(gt2seg_main, "gt2seg"), *_surface(seg_main, "seg")]


@pytest.mark.parametrize("command, flag", SURFACE, ids=[f"{c} {f or ''}".strip() for c, f in SURFACE])
def test_the_readme_documents_it(command, flag):
    if flag is None:
        assert _shows(README, command), f"README never shows `{command}`"
    else:
        pattern = re.compile(rf"{re.escape(flag)}(?![\w-])")
        assert any(pattern.search(s) and _shows(s, command) for s in SECTIONS), \
            f"README mentions {flag} in no section that shows `{command}`"


def test_the_surface_is_walked():
    commands = {c for c, f in SURFACE if f is None}
    assert {"gt2seg convert", "seg train", "seg serve", "seg local-job"} <= commands and len(SURFACE) > 40
    assert ("seg", "--verbose") in SURFACE and ("seg predict", "--batch-out") in SURFACE
