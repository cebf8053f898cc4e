"""docs/ is the reference: every command and every long option of `gt2seg` and `seg` appears in it, each option
in a section that shows its command, so a new option cannot ship undocumented; the hyperparameter table agrees
with seg/config.py; the README and docs link only to files that exist; and no doc tells the project's history."""
import dataclasses
import re

import click
import pytest

from gt2seg.cli import main as gt2seg_main
from repo import ROOT
from seg.cli import main as seg_main

DOCS = sorted((ROOT / "docs").glob("*.md"))
# Text between headings of any level, in every docs file (a section never spans two files).
SECTIONS = [s for doc in DOCS for s in re.split(r"^#+ ", doc.read_text(), flags=re.M)]
CLI_DOC = ROOT / "docs" / "CLI.md"


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
def test_the_docs_document_it(command, flag):
    if flag is None:
        assert _shows(CLI_DOC.read_text(), command), f"docs/CLI.md never shows `{command}`"
    else:
        pattern = re.compile(rf"{re.escape(flag)}(?![\w-])")
        assert any(pattern.search(s) and _shows(s, command) for s in SECTIONS), \
            f"no section of docs/*.md that shows `{command}` mentions {flag}"


def test_the_surface_is_walked():
    commands = {c for c, f in SURFACE if f is None}
    assert {"gt2seg convert", "seg train", "seg serve", "seg local-job"} <= commands and len(SURFACE) > 40
    assert ("seg", "--verbose") in SURFACE and ("seg predict", "--batch-out") in SURFACE


def _hyperparameter_rows() -> dict:
    text = CLI_DOC.read_text().split("## Hyperparameters", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[2].strip() for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", text, flags=re.M)}


def test_the_hyperparameter_table_gives_every_hyperparameter_with_its_default():
    from seg.config import EXTENSION_HPS, Hyperparameters

    rows = _hyperparameter_rows()
    fields = {f.name: f.default for f in dataclasses.fields(Hyperparameters)}
    assert set(rows) == set(fields), set(rows) ^ set(fields)
    for name, default in fields.items():
        if default is dataclasses.MISSING or default in ("", None):
            continue  # counted from the layout, or looked up elsewhere: the row says where
        shown = rows[name].strip("`")
        assert shown == str(default), f"{name}: the docs say {shown}, seg/config.py {default}"
    text = CLI_DOC.read_text()
    assert all(re.search(rf"^\| `{n}` .*\| extension \|$", text, flags=re.M) for n in EXTENSION_HPS)


def _links(path):
    for target in re.findall(r"\]\(([^)#\s]+)", path.read_text()):
        if not re.match(r"[a-z]+:", target):
            yield (path.parent / target).resolve().relative_to(ROOT).as_posix()


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file(doc):
    missing = [t for t in _links(doc) if not (ROOT / t).exists()]
    assert missing == []


HISTORY = re.compile(r"\bissue \d+|\bbefore this change|\bfinal build|\bbefore and after\b|\breorganisation\b|"
                     r"\blent to\b|\bsessions? that\b|\((?:was|were) [^)]*\)|\bbuilt this\b", re.I)


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_speak_of_the_product_not_of_its_history(doc):
    found = [m.group(0) for m in HISTORY.finditer(doc.read_text())]
    assert found == [], f"{doc.name} tells history (git keeps it): {found}"
