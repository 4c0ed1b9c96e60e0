"""Where a command may write: the rules that keep llm2rec from destroying what is not its own.

Every output directory llm2rec writes holds a marker file (:data:`MARKER`) naming what wrote it. A
command may replace an existing output only when it is a previous output of the same kind (the marker, or
for outputs made before markers existed, the file that kind always writes), or an empty directory; never
when it equals or contains one of the command's inputs, and never ``/``, the home directory or the working
directory (or one of their ancestors). :func:`check_output` applies these rules *before* any work starts,
and checks that the place is writable; :func:`llm2rec.io.atomic_dir` applies them again when it replaces.

Leftovers of an interrupted write (``.<name>.*.tmp`` directories holding our marker, ``.<name>.old``) are
cleaned up by the next write of the same output (:func:`clean_leftovers`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from llm2rec.errors import OutputError

MARKER = ".llm2rec-output.json"


def write_marker(directory: Path, kind: str) -> None:
    (Path(directory) / MARKER).write_text(json.dumps({"written_by": "llm2rec", "kind": kind}) + "\n")


def marker_kind(directory: Path) -> str | None:
    try:
        data = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) and data.get("written_by") == "llm2rec" else None


def is_ours(directory: Path, kind: str, legacy: Iterable[str] = ()) -> bool:
    """``directory`` is a previous output of ``kind`` (or empty)."""
    directory = Path(directory)
    if not any(directory.iterdir()):
        return True
    if marker_kind(directory) == kind:
        return True
    return any((directory / name).exists() for name in legacy)


def protected_reason(path: Path) -> str | None:
    """Why ``path`` may never be an output directory, or None."""
    path = path.resolve()
    if path == Path(path.anchor):
        return "the filesystem root"
    for name, place in (("your home directory", Path.home()), ("the working directory", Path.cwd())):
        place = place.resolve()
        if path == place or path in place.parents:
            return name if path == place else f"an ancestor of {name}"
    return None


def check_output(
    out: str | Path,
    kind: str,
    *,
    overwrite: bool,
    inputs: Iterable[str | Path] = (),
    legacy: Iterable[str] = (),
    reuse: bool = False,
) -> Path:
    """Refuse, with a message that says what to do, an ``out`` this command must not write; returns it.

    ``reuse`` is for outputs a command continues (a run directory, a training stage): an existing one of
    the same kind is fine without ``overwrite``.
    """
    out = Path(out)
    reason = protected_reason(out)
    if reason is not None:
        raise OutputError(f"--out {out} is {reason}; choose a new directory for the output")
    resolved = out.resolve()
    for item in inputs:
        item = Path(item).resolve()
        if item == resolved or resolved in item.parents:
            raise OutputError(
                f"--out {out} holds the input {item}: writing there would destroy it; choose another --out"
            )
    if out.exists() or out.is_symlink():
        _check_existing(out, kind, overwrite=overwrite, legacy=legacy, reuse=reuse)
    check_writable_parent(out)
    return out


def _check_existing(out: Path, kind: str, *, overwrite: bool, legacy, reuse: bool) -> None:
    if not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a directory; choose another --out")
    ours = is_ours(out, kind, legacy)
    if ours and (overwrite or reuse):
        return
    if not ours:
        raise OutputError(
            f"--out {out} is a non-empty directory that llm2rec did not write as a {kind} output; "
            "refusing to replace it (choose a new directory)"
        )
    raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")


def check_output_file(
    out: str | Path, kind: str, *, overwrite: bool, inputs: Iterable[str | Path] = ()
) -> Path:
    """The file form of :func:`check_output` (an item-vector file): an existing file may be replaced with
    ``overwrite`` only when its ``.json`` record says llm2rec wrote it as ``kind``."""
    out = Path(out)
    for item in inputs:
        if Path(item).resolve() == out.resolve():
            raise OutputError(f"--out {out} is an input of this command; choose another --out")
    if out.exists():
        if out.is_dir():
            raise OutputError(f"--out {out} is a directory; give a file name ending in .npy")
        if not overwrite:
            raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
        if _record_kind(out.with_suffix(".json")) != kind:
            raise OutputError(f"--out {out} was not written by llm2rec ({kind}); refusing to replace it")
    check_writable_parent(out)
    return out


def _record_kind(record: Path) -> str | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    # Records written before "written_as" existed still name the encoder that made the vectors.
    return data.get("written_as") or ("item-vectors" if "encoder_kind" in data else None)


def check_writable_parent(out: Path) -> None:
    """The nearest existing ancestor of ``out`` must be a writable directory (checked before the work)."""
    parent = Path(out).absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: {parent} is not writable (read-only or no permission)")


def clean_leftovers(final: Path) -> None:
    """Remove what an interrupted write of ``final`` left beside it: its hidden temporary directories
    (only those holding our marker) and, once ``final`` exists, its ``.old`` copy; an ``.old`` copy with no
    ``final`` (interrupted between the two renames of a replace) is moved back."""
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(final.name)}\..+\.tmp$")
    for entry in parent.iterdir():
        if pattern.match(entry.name) and entry.is_dir() and marker_kind(entry) is not None:
            shutil.rmtree(entry, ignore_errors=True)
    old = parent / f".{final.name}.old"
    if old.is_dir():
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, final)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def follow_umask(path: Path, directory: bool) -> None:
    """``tempfile`` makes private (0700 / 0600) entries; outputs get the user's usual mode instead."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())
