"""Platforms the mesh runs on, by name: `local` (embedded, the default) and `kind`."""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from harness.platforms.base import Platform, mesh_status
from harness.platforms.model import MeshStatus, Pod

__all__ = ["DEFAULT_PLATFORM", "MeshStatus", "Platform", "Pod", "get_platform", "mesh_status", "platform_names"]

DEFAULT_PLATFORM = "local"


def platform_names() -> tuple[str, ...]:
    return ("local", "kind")


def get_platform(name: str, **options: Any) -> Platform:
    """The platform registered under `name`; an unknown name lists the valid ones.

    `options` are platform-specific flags (kind: clusters, allow_context, dry_run); a platform that
    does not take one says so.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if name == "local":
        if options:
            raise ConfigError(f"the local platform takes no {', '.join(sorted(options))} (kind only)",
                              field="--platform")
        from harness.platforms.local.platform import LocalPlatform

        return LocalPlatform.from_env()
    if name == "kind":
        from harness.platforms.kind import KindPlatform

        return KindPlatform.from_env(**options)
    raise ConfigError(f"unknown platform {name!r}; expected one of: {', '.join(platform_names())}",
                      field="--platform")
