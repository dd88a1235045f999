"""The one atomic writer: final mode from the start, no temp file left behind, bytes and text."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.files import atomic_write


def test_atomic_write_creates_the_file_with_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "a" / "key.pem", b"secret", mode=0o600, durable=True)
        atomic_write(tmp_path / "a" / "public.json", "{}", mode=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a" / "public.json").stat().st_mode) == 0o644
    assert (tmp_path / "a" / "key.pem").read_bytes() == b"secret"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["key.pem", "public.json"]


def test_atomic_write_replaces_and_leaves_no_temp_file_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    atomic_write(target, "old")
    atomic_write(target, "new ü")
    assert target.read_text(encoding="utf-8") == "new ü"
    with pytest.raises(TypeError):
        atomic_write(target, 5)  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "new ü"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]
