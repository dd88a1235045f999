"""Platforms the mesh runs on, by name: `local` (embedded, the default) and `kind`."""

from __future__ import annotations

from harness.errors import ConfigError
from harness.platforms.base import Platform

DEFAULT_PLATFORM = "local"


def platform_names() -> tuple[str, ...]:
    return ("local", "kind")


def get_platform(name: str) -> Platform:
    """The platform registered under `name`; an unknown name lists the valid ones."""
    if name == "local":
        from harness.platforms.local.platform import LocalPlatform

        return LocalPlatform.from_env()
    if name == "kind":
        raise ConfigError("the kind platform is not built yet (issue: kind platform); use --platform local",
                          field="--platform")
    raise ConfigError(f"unknown platform {name!r}; expected one of: {', '.join(platform_names())}",
                      field="--platform")
