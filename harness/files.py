"""One atomic file writer for the whole harness: journals, ledgers, xDS files, keys and reports.

Every writer used to pick its own policy (fixed temp names, fsync or not, cleanup or not). This one
has a single policy: a uniquely named temp file beside the target, created with its final mode
(never readable by others, even briefly), renamed into place; removed if anything fails. `durable`
adds an fsync of the file and of its directory, for records that must survive a SIGKILL or a crash
(the fault ledger, the CA's keys); the xDS push path leaves it off because Envoy reads the file at
once and a lost push is simply pushed again.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir"]


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, mode: int = 0o644,
                 durable: bool = False) -> None:
    """Replace `path` with `data` in one rename; `str` is written as UTF-8."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode is masked by the umask
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)


def fsync_dir(directory: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
    """Make a rename or removal in `directory` survive a crash (fsync of the folder itself)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
