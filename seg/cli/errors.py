"""The one error mapper of the `seg` command line: every command runs inside `SegGroup.invoke`.

- an expected failure (`SegError`, `Gt2SegError`, an `OSError` naming its file): `Error: <message>`, exit 1;
- an optional dependency that is missing: what to install (from a checkout: `pip install -e '.[cpu]'`), exit 1;
- anything else is a bug: with `seg -v` the full traceback, without it one line saying so; exit 1.

Library messages name parameters as `name=value`; here the running command's own options become flags
(`fifo_dir=/x` → `--fifo-dir /x`), so the same message reads right in a notebook and in a shell.
"""
from __future__ import annotations

import re

import click

from seg.errors import is_expected, missing_extra


def as_flags(message: str, command: click.Command | None) -> str:
    """`name=value` → `--flag value` for each option of `command` (its Python name → its first long flag)."""
    for param in getattr(command, "params", ()):
        flags = [o for o in param.opts if o.startswith("--")] if isinstance(param, click.Option) else []
        if flags and param.name:
            message = re.sub(rf"(?<![\w-]){re.escape(param.name)}=(?=\S)", f"{flags[0]} ", message)
    return message


class SegGroup(click.Group):
    """A click group whose commands need no try/except: failures are mapped here, once."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            extra = missing_extra(exc)
            if extra is not None:
                raise click.ClickException(str(extra)) from None
            if is_expected(exc):
                raise click.ClickException(as_flags(str(exc), command)) from None
            if ctx.params.get("verbose"):
                raise
            raise click.ClickException(f"unexpected {type(exc).__name__}: {exc}. This is a bug in seg: "
                                       "re-run with `seg -v ...` for the traceback and report it") from None
