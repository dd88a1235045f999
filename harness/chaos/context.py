"""Which platform chaos acts on: set by `harness run`, else HARNESS_PLATFORM (for plain `chaos run`)."""

from __future__ import annotations

import threading

from harness import environment
from harness.platforms import DEFAULT_PLATFORM, get_platform
from harness.platforms.base import Platform

_lock = threading.Lock()
_platform: Platform | None = None


def use_platform(platform: Platform | None) -> None:
    global _platform
    with _lock:
        _platform = platform


def current_platform() -> Platform:
    global _platform
    with _lock:
        if _platform is None:
            _platform = get_platform(environment.get("HARNESS_PLATFORM") or DEFAULT_PLATFORM)
        return _platform
