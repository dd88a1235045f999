"""Which experiments a suite runs: every file in the experiments directory tagged with the suite's tag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.pathcheck import checked_path

PATTERNS = ("*.yaml", "*.yml", "*.json")  # what Chaos Toolkit loads


@dataclass(frozen=True)
class SuiteEntry:
    """One experiment file of a suite; `problem` is set when its tags could not be read (it then counts
    as an invalid experiment, exit 2, rather than silently dropping out of the suite)."""

    path: Path
    title: str
    tags: tuple[str, ...]
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem


def read_entries(experiments_dir: Path) -> list[SuiteEntry]:
    """Every experiment file in `experiments_dir` (not its subdirectories), by file name."""
    checked_path(experiments_dir, field="--experiments-dir")
    if not experiments_dir.is_dir():
        raise ConfigError(f"no experiments directory at {experiments_dir}", field="--experiments-dir")
    paths = sorted({p for pattern in PATTERNS for p in experiments_dir.glob(pattern) if p.is_file()})
    return [_entry(path) for path in paths]


def _entry(path: Path) -> SuiteEntry:
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return SuiteEntry(path, path.stem, (), problem=f"cannot read its tags: {exc}")
    except RecursionError:  # PyYAML recurses once per nesting level
        return SuiteEntry(path, path.stem, (), problem="cannot read its tags: YAML nested too deeply to read")
    except ValueError as exc:  # an integer past Python's 4300-digit limit
        return SuiteEntry(path, path.stem, (), problem=f"cannot read its tags: {exc}")
    if not isinstance(document, dict):
        return SuiteEntry(path, path.stem, (), problem="cannot read its tags: not a mapping")
    tags = document.get("tags") or []
    if not isinstance(tags, list):
        return SuiteEntry(path, str(document.get("title") or path.stem), (), problem="`tags` is not a list")
    return SuiteEntry(path, str(document.get("title") or path.stem), tuple(str(t) for t in tags))


def entries_tagged(tag: str, experiments_dir: Path) -> list[SuiteEntry]:
    """The experiments tagged `tag`, plus unreadable files (they may be tagged); ConfigError listing the
    tags in use when none is."""
    entries = read_entries(experiments_dir)
    chosen = [e for e in entries if tag in e.tags]
    if not chosen:
        in_use = sorted({t for e in entries for t in e.tags})
        listed = ", ".join(in_use) if in_use else "none"
        unreadable = [e for e in entries if e.problem is not None]
        if unreadable:  # one of them may be the tagged experiment: name it rather than only the tag
            raise ConfigError(f"no readable experiment in {experiments_dir} is tagged {tag!r} (tags in use: {listed}); "
                              f"{len(unreadable)} file(s) could not be read, the first {unreadable[0].problem}",
                              file=unreadable[0].path, field="tags")
        raise ConfigError(f"no experiment in {experiments_dir} is tagged {tag!r}; tags in use: {listed}",
                          field="tag")
    return [e for e in entries if tag in e.tags or e.problem is not None]
