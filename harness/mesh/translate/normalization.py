"""meshConfig.pathNormalization to HTTP connection manager options, exactly as Istio's pilot sets them.

istio/istio pilot/pkg/networking/core/listener_builder.go `buildHTTPConnectionManager`: every HCM
gets `path_with_escaped_slashes_action: KEEP_UNCHANGED`; NONE turns `normalize_path` off; BASE (the
default) and DEFAULT turn it on (RFC 3986: `.`/`..` segments resolved, unreserved %-escapes decoded,
backslashes made slashes); MERGE_SLASHES also merges `//`; DECODE_AND_MERGE_SLASHES also decodes
`%2F`/`%5C` (UNESCAPE_AND_FORWARD). Authorization then sees the path the app will see.
"""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError

MODES = ("NONE", "BASE", "DEFAULT", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")


def path_normalization(mode: str) -> dict[str, Any]:
    """The HCM fields for one pathNormalization mode."""
    if mode not in MODES:
        raise ConfigError(f"expected one of {', '.join(MODES)}, got {mode!r}",
                          field="meshConfig.pathNormalization.normalization")
    options: dict[str, Any] = {"path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                               "normalize_path": mode != "NONE"}
    if mode in ("MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"):
        options["merge_slashes"] = True
    if mode == "DECODE_AND_MERGE_SLASHES":
        options["path_with_escaped_slashes_action"] = "UNESCAPE_AND_FORWARD"
    return options
