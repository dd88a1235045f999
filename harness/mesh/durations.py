"""Parse Istio/protobuf duration strings ("30s", "100ms", "1.5s", "1m", "2h") into seconds."""

from __future__ import annotations

import re

_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in an Istio duration; raises ValueError with the expected form."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected a duration such as '30s' or '100ms', got {text!r}")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"expected a duration such as '30s' or '100ms', got {text!r}")
    return total


def envoy_duration(seconds: float) -> str:
    """Seconds as a protobuf JSON Duration string ("0.250s")."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
