"""Paths a user typed or wrote in a file, checked before the file system sees them.

A NUL byte makes Python raise ValueError and an over-long name OSError(ENAMETOOLONG) from calls
such as Path.is_file(), which would otherwise surface as tracebacks; here they are ConfigErrors
naming the field and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import ConfigError

MAX_PATH, MAX_NAME = 4096, 255  # Linux's PATH_MAX and NAME_MAX: longer fails in the kernel (ENAMETOOLONG)


def path_problem(raw: Any) -> str | None:
    """Why `raw` is not a usable file path, or None when it is one."""
    if isinstance(raw, Path):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        text = repr(raw)
        return f"expected a file path (a string), got {type(raw).__name__} {text[:60]}"
    if "\0" in raw:
        return "expected a file path, got one with a NUL byte"
    if len(raw) > MAX_PATH or any(len(part) > MAX_NAME for part in Path(raw).parts):
        return (f"expected a file path of at most {MAX_PATH} characters with names of at most {MAX_NAME}, "
                f"got {len(raw)} characters")
    return None


def shown(raw: Any) -> str:
    """A path fit for an error message: NUL bytes escaped, long ones cut."""
    text = str(raw).replace("\0", "\\0")
    return text if len(text) <= 120 else f"{text[:60]}...({len(text)} characters)...{text[-40:]}"


def checked_path(raw: Any, *, field: str, file: Any = None) -> Path:
    """`raw` as a Path; a ConfigError naming `field` (and `file`, if given) when it cannot be one."""
    problem = path_problem(raw)
    if problem:
        raise ConfigError(problem, file=shown(file) if file is not None else None, field=field)
    return Path(raw)
