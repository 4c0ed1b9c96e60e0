"""Where a command may write: the rules that keep llm2rec from destroying what is not its own.

Every output directory llm2rec writes holds a marker file (:data:`MARKER`) naming what wrote it and
listing what it wrote (``files``: relative paths; an entry ending in ``/`` or holding a ``*`` covers the
paths it matches, for directories a command fills step by step, such as a training state). A
subdirectory with a marker of its own (a stage of a run) answers for itself. Only that marker counts as
ownership: a directory that merely holds files named like ours is not ours.

A command may replace an existing output only when it is a previous output of the same kind and holds
nothing its marker does not list, or is an empty directory; never when it equals or contains one of the
command's inputs, and never ``/``, the home directory or the working directory (or one of their
ancestors). Outputs written before markers listed their files are refused, with a message that says how to
remove them by hand. :func:`check_output` applies these rules *before* any work starts, and checks that
the place is writable by creating (and removing) a temporary directory there;
:func:`llm2rec.io.atomic_dir` applies them again when it replaces.

Leftovers of an interrupted write (``.<name>.*.tmp`` directories holding our marker, ``.<name>.old``) are
cleaned up by the next write of the same output (:func:`clean_leftovers`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from llm2rec.errors import OutputError

MARKER = ".llm2rec-output.json"


def write_marker(directory: Path, kind: str, files: Iterable[str] | None = None) -> None:
    """Mark ``directory`` as an output of ``kind`` that holds ``files`` (default: what it holds now)."""
    directory = Path(directory)
    listed = sorted(files) if files is not None else listing(directory)
    record = {"written_by": "llm2rec", "kind": kind, "files": listed}
    (directory / MARKER).write_text(json.dumps(record) + "\n")


def read_marker(directory: Path) -> dict | None:
    try:
        data = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("written_by") == "llm2rec" else None


def marker_kind(directory: Path) -> str | None:
    data = read_marker(directory)
    return data.get("kind") if data else None


def _entries(directory: Path):
    """What ``directory`` holds, for its marker: ``(relative path, None)`` for every file and symbolic link
    (a linked folder is not followed: it is one entry) but the marker itself, and ``(relative path,
    folder)`` for each subfolder with a marker of its own, which answers for what it holds."""
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        links = sorted(d for d in dirs if (here / d).is_symlink())
        nested = sorted(d for d in dirs if d not in links and read_marker(here / d) is not None)
        dirs[:] = sorted(d for d in dirs if d not in links and d not in nested)
        for name in nested:
            yield (here / name).relative_to(directory).as_posix(), here / name
        for name in sorted(files) + links:
            rel = (here / name).relative_to(directory).as_posix()
            if rel != MARKER:
                yield rel, None


def listing(directory: Path) -> list[str]:
    """Every file under ``directory`` (relative, ``/``-separated), but the marker and what subdirectories
    with a marker of their own hold."""
    return sorted(rel for rel, nested in _entries(Path(directory)) if nested is None)


_ATOMIC_TEMP = re.compile(r"^(?P<dir>(?:.*/)?)\.(?P<name>[^/]+)\.[^./]+\.tmp$")  # io.atomic_write_bytes


def _covered(rel: str, entries: list[str]) -> bool:
    """Whether a listing covers ``rel``: by name, by a folder (``dir/``) or by a pattern (``seed-*/``,
    ``embeddings/*.npy``; ``*`` also crosses ``/``). The temporary file an interrupted atomic write of a
    covered file left (``.<name>.<random>.tmp``) is covered with it."""
    temp = _ATOMIC_TEMP.match(rel)
    if temp is not None:
        rel = temp["dir"] + temp["name"]
    for entry in entries:
        pattern = entry + "*" if entry.endswith("/") else entry
        if rel == entry or (("*" in pattern) and fnmatch.fnmatchcase(rel, pattern)):
            return True
    return False


def first_unlisted(directory: Path) -> str | None:
    """The first path under ``directory`` that its marker does not list (nested outputs checked against
    their own marker), or None when every entry is accounted for; ``"."`` when ``directory`` has no marker
    with a listing (nothing in it can be told apart as ours)."""
    directory = Path(directory)
    marker = read_marker(directory)
    if marker is None or not isinstance(marker.get("files"), list):
        return "."
    entries = [str(e) for e in marker["files"]]
    for rel, nested in _entries(directory):
        if nested is None:
            if not _covered(rel, entries):
                return rel
        elif (inner := first_unlisted(nested)) is not None:
            return f"{rel}/{inner}"
    return None


def why_not_ours(out: Path, kind: str, legacy: Iterable[str]) -> str | None:
    """Why ``out`` (an existing directory) is not a replaceable ``kind`` output, or None when it is."""
    if not any(out.iterdir()):
        return None
    marker = read_marker(out)
    own_kind = marker is not None and marker.get("kind") == kind
    if own_kind and isinstance(marker.get("files"), list):
        extra = first_unlisted(out)
        if extra is None:
            return None
        return (
            f"--out {out} holds {extra}, which llm2rec did not write there; refusing to replace it "
            "(move it out, or choose another --out)"
        )
    if own_kind or (marker is None and any((out / name).exists() for name in legacy)):
        return (
            f"--out {out} has no llm2rec marker listing its files (outputs of older llm2rec versions had "
            f"none), so llm2rec cannot tell what in it is yours: if it is an old llm2rec {kind} output, "
            f"delete it by hand (rm -r {out}) and run again; otherwise choose another --out"
        )
    return (
        f"--out {out} is a non-empty directory that llm2rec did not write as a {kind} output; "
        "refusing to replace it (choose a new directory)"
    )


def is_ours(directory: Path, kind: str, legacy: Iterable[str] = ()) -> bool:
    """``directory`` is a previous output of ``kind`` holding only what its marker lists (or empty)."""
    return why_not_ours(Path(directory), kind, legacy) is None


def is_continuable(directory: Path, kind: str) -> bool:
    """``directory`` may be written into again (a run directory is continued, never replaced): empty, or
    marked as ``kind`` by any llm2rec, with or without a listing; a user's file in it is left alone."""
    directory = Path(directory)
    return not any(directory.iterdir()) or marker_kind(directory) == kind


def protected_reason(path: Path) -> str | None:
    """Why ``path`` may never be an output directory, or None."""
    path = Path(os.path.realpath(path))
    if path == Path(path.anchor):
        return "the filesystem root"
    for name, place in (("your home directory", Path.home()), ("the working directory", Path.cwd())):
        place = Path(os.path.realpath(place))
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

    ``reuse`` is for outputs a command continues rather than replaces (a run directory): an existing one
    of the same kind is fine without ``overwrite``. ``legacy`` names the files an output of ``kind`` made
    before markers existed always holds (only to say how to remove it by hand).
    """
    out = Path(out)
    reason = protected_reason(out)
    if reason is not None:
        raise OutputError(f"--out {out} is {reason}; choose a new directory for the output")
    resolved = Path(os.path.realpath(out))
    for item in inputs:
        if not os.path.exists(item):
            continue  # a missing input (or a symlink loop) is its reader's error: "input not found"
        item = Path(os.path.realpath(item))
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
    if reuse:
        if is_continuable(out, kind):
            return
        raise OutputError(why_not_ours(out, kind, legacy) or f"--out {out} is not a {kind} output")
    refusal = why_not_ours(out, kind, legacy)
    if refusal is not None:
        raise OutputError(refusal)
    if not overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")


def check_output_file(
    out: str | Path, kind: str, *, overwrite: bool, inputs: Iterable[str | Path] = ()
) -> Path:
    """The file form of :func:`check_output` (an item-vector file): an existing file may be replaced with
    ``overwrite`` only when its ``.json`` record says llm2rec wrote it as ``kind``."""
    out = Path(out)
    for item in inputs:
        if os.path.exists(item) and os.path.realpath(item) == os.path.realpath(out):
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
    """The nearest existing ancestor of ``out`` must be a directory where llm2rec can create one: tried
    for real (permission bits say yes to read-only mounts and pseudo file systems for root)."""
    parent = Path(out).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: {parent} is a file, not a directory")
    check_writable_dir(parent, out)


def check_writable_dir(directory: Path, out: Path | None = None) -> None:
    """Create (and remove) a temporary directory in ``directory``: the one check that tells."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".llm2rec-write-check.", dir=directory))
    except OSError as exc:
        raise OutputError(
            f"cannot write {out or directory}: {directory} is not writable ({exc.strerror or exc})"
        ) from None


def remove_output(path: Path) -> None:
    """Remove a previous output that llm2rec wrote (a directory its marker accounts for, or an item-vector
    file with its record); refuse, with the first file it does not account for, anything else."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        if any(path.iterdir()):
            extra = first_unlisted(path)
            if extra is not None:
                what = "it has no llm2rec marker" if extra == "." else f"it holds {extra}"
                raise OutputError(
                    f"refusing to remove {path}: {what}, which llm2rec did not write; move it out of the "
                    "way (or delete it by hand) and run again"
                )
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        if _record_kind(path.with_suffix(".json")) is None:
            raise OutputError(f"refusing to remove {path}: llm2rec did not write it (no record beside it)")
        path.unlink()


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
