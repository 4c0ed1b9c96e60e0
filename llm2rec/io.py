"""Small file helpers: atomic writes and checksums. Every artifact goes through these."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from llm2rec.errors import OutputError
from llm2rec.outdir import clean_leftovers, follow_umask, protected_reason, why_not_ours, write_marker


def work_dir_for(out: str | Path) -> Path:
    """``<out>.work``: where a stage keeps checkpoints or finished parts while ``out`` is not yet published."""
    out = Path(out)
    if not out.name:  # "." or "/": name it by its absolute path (the output checks then refuse it)
        out = out.absolute()
    return out.with_name(out.name + ".work") if out.name else out / ".work"


def portable_path(path: str | Path, base: str | Path) -> str:
    """How an output records a local ``path``: relative to the folder ``base`` it is written in (``/``
    separated), so that a run moved or copied elsewhere still finds what it points at; a path that is not
    on this machine (a hub id) stays as it is."""
    if not Path(path).exists():
        return str(path)
    return Path(os.path.relpath(Path(path).absolute(), Path(base).absolute())).as_posix()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file beside ``path`` and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        follow_umask(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_dir(
    final: str | Path, overwrite: bool = False, kind: str | None = None, legacy: tuple[str, ...] = ()
) -> Iterator[Path]:
    """Yield a temp directory beside ``final``; on success it replaces ``final``, on error it is removed.

    Nothing half-written is ever left at ``final``: either the old content or the complete new one. The
    new directory holds a marker naming ``kind`` (see :mod:`llm2rec.outdir`); an existing ``final`` is
    replaced only with ``overwrite`` and only when it is a previous output of that kind (``output`` when not
    given) that holds nothing its marker does not list, or empty; the new marker lists every file the
    caller wrote. Leftovers of an interrupted earlier write are removed first.
    """
    final = Path(final)
    reason = protected_reason(final)
    if reason is not None:
        raise OutputError(f"{final} is {reason}; refusing to write an output there")
    clean_leftovers(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists (pass --overwrite to replace it)")
    kind = kind or "output"
    if final.exists() and not final.is_dir():
        raise OutputError(f"{final} is not a directory; refusing to replace it with a {kind} output")
    refusal = why_not_ours(final, kind, legacy) if final.exists() else None
    if refusal is not None:
        raise OutputError(refusal)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        follow_umask(tmp, directory=True)
        write_marker(tmp, kind, files=())  # marks the temp dir as ours, for clean_leftovers
        yield tmp
        write_marker(tmp, kind)  # again, listing what the caller wrote (it may have copied a marker in)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
