"""Typed errors. Each carries enough context (line, file, value) for the CLI to
print one actionable message and exit non-zero; library callers catch them."""


class Gt2SegError(Exception):
    """Base class: every failure gt2seg reports on purpose."""


def install_extra_hint(extra: str) -> str:
    """The command that installs one of setup.cfg's extras. gt2seg is not on the package index (and `seg` there
    is another project), so it is an editable install run in a checkout of this repository."""
    return f"from a checkout of gt2seg: pip install -e '.[{extra}]'"


class StorageError(Gt2SegError):
    """An object could not be read or written (missing, denied, bad URI)."""


class MissingObjectError(StorageError):
    """The object named by a ref does not exist."""


class ManifestError(Gt2SegError):
    """The manifest itself is unusable (malformed line, no usable line, ambiguity)."""


class _AtLine:
    """An error about one manifest line: `line` is 1-based, `detail` the message without it."""

    def __init__(self, line, message):
        self.line = line
        self.detail = message
        super().__init__(f"line {line}: {message}")


class JsonLineError(_AtLine, ManifestError):
    """One manifest line is not a strict JSON object (see gt2seg.jsonl)."""


class SourceError(Gt2SegError):
    """A dataset to import is not laid out as its format expects (a missing folder or list file, a
    malformed list row, an unreadable class table)."""


class OutputError(Gt2SegError):
    """The output folder cannot be used: not writable, in use by another run, or holding files
    gt2seg did not write where it would write."""


class ItemError(_AtLine, Gt2SegError):
    """One manifest line's image or mask is bad."""


class ImageError(Gt2SegError, ValueError):
    """Bytes that cannot be decoded as an image. `kind` (empty, unreadable, too_large, truncated) lets
    each caller add its own context: a manifest line, a file, an HTTP status."""

    def __init__(self, what, kind, problem, reason):
        self.what, self.kind, self.problem, self.reason = what, kind, problem, reason
        super().__init__(f"{what} is {problem} ({reason})")


class ClassesError(Gt2SegError, ValueError):
    """A classes.json that is not the list of {"index", "name", "color"} gt2seg writes."""


class SplitError(Gt2SegError):
    """The items cannot be split into two non-empty sides."""


class ConversionError(Gt2SegError):
    """One or more items failed; `errors` holds every ItemError found."""

    def __init__(self, errors, shown=20):
        self.errors = list(errors)
        lines = [str(e) for e in self.errors[:shown]]
        more = len(self.errors) - len(lines)
        if more > 0:
            lines.append(f"... and {more} more")
        listing = " " + lines[0] if len(lines) == 1 else "\n  " + "\n  ".join(lines)
        super().__init__(
            f"{len(self.errors)} item(s) could not be converted; nothing was written to the "
            "layout (finished items are cached, a re-run resumes). Fix the inputs or pass "
            "--on-error skip to leave them out:" + listing
        )


class ShardError(Gt2SegError):
    """The shards given to the reduce are not one complete, consistent set (one missing, duplicated,
    unfinished, or converted with other options or from another manifest)."""


class ProcessingError(Gt2SegError):
    """A SageMaker Processing job cannot be set up: no resource config where `--shard auto` looks, a
    request missing what it needs, or CreateProcessingJob refused."""
