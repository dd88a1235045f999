"""The sample services (ai-agent, analytics, user, external-ai-api), run with `python -m harness.services`."""

from __future__ import annotations

from harness.services.config import SERVICE_NAMES, ServiceConfig, from_env

__all__ = ["SERVICE_NAMES", "ServiceConfig", "from_env"]
