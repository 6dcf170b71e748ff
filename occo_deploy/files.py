"""Writing outputs safely: never over a user's file without ``force``, never half-written."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from occo_deploy.errors import InputError, OutputExistsError, option


def check_writable(path: Path, force: bool) -> None:
    """Refuse to replace an existing file unless ``force``; refuse to replace a folder at all."""
    if path.is_dir():
        raise OutputExistsError(f"output {path} is a folder; give a file name with -o")
    if path.exists() and not force:
        raise OutputExistsError(f"output {path} exists; pass {option('force', True)} to overwrite it or choose "
                                "another with -o")


@contextlib.contextmanager
def atomic_output(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block completes.

    The temporary name keeps the suffix, because writers such as OpenCV's pick the container from it.
    On any exception (Ctrl-C included) the temporary file is removed, so nothing half-written that
    looks whole is ever left behind.
    """
    path = Path(path)
    check_writable(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder for {path}: {exc.strerror}") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # Checked again: another process may have created the file while we were writing.
        check_writable(path, force)
        # mkstemp creates 0600; give the result the permissions any new file of the user would have.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: errno values that mean the disk (or the process's file-size limit) took no more.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) says the disk or a size limit is full."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def keep_partial(tmp: Path, path: Path, force: bool = False) -> None:
    """Put what ``atomic_output`` wrote so far in place after all: for files that are whole up to where
    they stop (a fragmented MP4 the disk cut short), what was written is worth more than nothing."""
    check_writable(path, force)
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def write_bytes_atomic(path: str | Path, data: bytes, force: bool = False) -> None:
    with atomic_output(path, force) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, obj: Any, force: bool = False) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode(), force)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
