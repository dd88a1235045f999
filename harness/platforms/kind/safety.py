"""The kind platform's safety rules: which kube contexts it may act on, and its blast-radius limit."""

from __future__ import annotations

import math

from harness.errors import ConfigError

KIND_CONTEXT_PREFIX = "kind-"


def check_context(context: str, allow_context: str | None) -> None:
    """Refuse any context that is not a kind cluster's, unless the user named exactly that one."""
    if context.startswith(KIND_CONTEXT_PREFIX) or (allow_context is not None and context == allow_context):
        return
    hint = (f"--allow-context {context} (HARNESS_ALLOW_CONTEXT={context})" if allow_context is None else
            f"--allow-context names {allow_context!r}, not this one")
    raise ConfigError(f"refusing to act on kube context {context!r}: the kind platform acts only on contexts "
                      f"named kind-*, unless {hint}", field="context")


def check_blast_radius(service: str, total: int, down_after: int, max_percent: float) -> None:
    """At most `max_percent` of a service's pods may be down at once because of the harness."""
    limit = math.floor(total * max_percent / 100 + 1e-9)
    if down_after > limit:
        raise ConfigError(f"taking one more {service} pod down would leave {down_after} of {total} down, over the "
                          f"blast-radius limit of {max_percent:g}% ({limit} pod(s)); raise HARNESS_MAX_PERCENT "
                          "to allow it", field="max_percent")
