"""AI-agent traffic mix: standard, premium and canary users chatting through the ingress gateway.

    locust -f locustfiles/ai_agent.py --headless -u 20 -r 10 -t 60s --host http://127.0.0.1:18080

Every user sends POST /api/v1/chat with JSON {"user_id", "prompt"}, its `x-user-id`, a fresh W3C
`traceparent` per request and the Host header the gateway routes on. Premium users add
`x-user-tier: premium`, canary users `x-canary: true`. Requests are named by tier
("chat [premium]"), and the tier is in the request context for event listeners.

Environment (all optional; see locustfiles/README.md):
  HARNESS_INGRESS_HOST       Host header (default ai-agent-service.parallel-ai.svc.cluster.local)
  HARNESS_TIER_WEIGHTS       user mix, default "standard=80,premium=15,canary=5"; any subset; 0 drops a tier
  HARNESS_THINK_TIME         seconds between a user's requests, "min,max" or one number (default "0.5,2")
  HARNESS_REQUEST_TIMEOUT_S  connect and read timeout of a request (default 10)
  HARNESS_TRACEPARENT        a W3C traceparent whose trace every request joins (set by `harness run`)
  HARNESS_LOAD_SHAPE         steady | ramp | spike | soak (shapes.py) with HARNESS_USERS,
                             HARNESS_SPAWN_RATE, HARNESS_DURATION_S; unset: plain -u/-r/-t
The target must be on 127.0.0.0/8: any other --host stops Locust before a request is sent.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import secrets
from typing import Any, ClassVar
from urllib.parse import urlsplit

import shapes  # beside this file; Locust puts this directory on sys.path while importing it
from locust import FastHttpUser, between, constant, events, task

INGRESS_HOST = os.environ.get("HARNESS_INGRESS_HOST", "ai-agent-service.parallel-ai.svc.cluster.local")
DEFAULT_WEIGHTS = {"standard": 80, "premium": 15, "canary": 5}
PROMPTS = (
    "Summarise my last three orders.",
    "Which plan suits a team of five?",
    "Translate 'good morning' into French.",
    "Draft a polite reminder about an unpaid invoice.",
    "What changed in my account this week?",
)


def _tier_weights(raw: str) -> dict[str, int]:
    weights = dict(DEFAULT_WEIGHTS)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        tier, _, value = part.partition("=")
        if tier.strip() not in weights or not value.strip().isdigit():
            raise ValueError(f"HARNESS_TIER_WEIGHTS={raw!r}: expected e.g. 'standard=80,premium=15,canary=5'")
        weights[tier.strip()] = int(value)
    if not any(weights.values()):
        raise ValueError(f"HARNESS_TIER_WEIGHTS={raw!r}: at least one tier needs a weight above 0")
    return weights


def _think_time(raw: str) -> Any:
    parts = raw.split(",")
    try:
        low, high = float(parts[0]), float(parts[-1])
    except ValueError:
        low = high = -1.0
    if len(parts) > 2 or not 0 <= low <= high < float("inf"):
        raise ValueError(f"HARNESS_THINK_TIME={raw!r}: expected 'min,max' seconds with 0 <= min <= max, or one number")
    return constant(low) if low == high else between(low, high)


# `harness run` hands Locust the W3C traceparent of its run (HARNESS_TRACEPARENT), so the mesh's
# traces of these requests join the trace of the experiment that caused them.
_PHASE = re.fullmatch(r"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})", os.environ.get("HARNESS_TRACEPARENT", ""))


def _traceparent() -> str:
    trace_id = _PHASE[1] if _PHASE else f"{random.getrandbits(128) or 1:032x}"
    sampled = int(_PHASE[2], 16) & 1 if _PHASE else 1
    return f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-{sampled:02x}"


WEIGHTS = _tier_weights(os.environ.get("HARNESS_TIER_WEIGHTS", ""))
REQUEST_TIMEOUT_S = float(os.environ.get("HARNESS_REQUEST_TIMEOUT_S", "10"))


class ChatUser(FastHttpUser):
    """One user of a tier: chats, thinks, chats again."""

    abstract = True
    tier: ClassVar[str] = "standard"
    tier_headers: ClassVar[dict[str, str]] = {}
    wait_time = _think_time(os.environ.get("HARNESS_THINK_TIME", "0.5,2"))
    connection_timeout = REQUEST_TIMEOUT_S
    network_timeout = REQUEST_TIMEOUT_S

    def on_start(self) -> None:
        self.user_id = f"{self.tier}-{secrets.token_hex(4)}"
        self.chat_name = f"chat [{self.tier}]"
        self.chat_headers = {"Host": INGRESS_HOST, "x-user-id": self.user_id, **self.tier_headers}

    def context(self) -> dict[str, str]:
        return {"tier": self.tier}

    @task
    def chat(self) -> None:
        self.client.post("/api/v1/chat", name=self.chat_name,
                         json={"user_id": self.user_id, "prompt": random.choice(PROMPTS)},
                         headers={**self.chat_headers, "traceparent": _traceparent()})


class StandardUser(ChatUser):
    tier = "standard"
    weight = WEIGHTS["standard"]


class PremiumUser(ChatUser):
    tier = "premium"
    tier_headers: ClassVar[dict[str, str]] = {"x-user-tier": "premium"}
    weight = WEIGHTS["premium"]


class CanaryUser(ChatUser):
    tier = "canary"
    tier_headers: ClassVar[dict[str, str]] = {"x-canary": "true"}
    weight = WEIGHTS["canary"]


for _user_class in (StandardUser, PremiumUser, CanaryUser):
    if _user_class.weight == 0:  # Locust runs every user class it finds; a weight of 0 means none
        del globals()[_user_class.__name__]
del _user_class  # a module-level name for a user class would make Locust run it under that name too

_chosen_shape = shapes.shape_from_env()
if _chosen_shape is not None:

    class LoadShape(_chosen_shape):  # type: ignore[valid-type,misc]
        """The shape HARNESS_LOAD_SHAPE chose; this subclass is the one Locust runs."""


@events.init.add_listener
def _refuse_remote_targets(environment: Any, **_: Any) -> None:
    """Load goes to 127.0.0.0/8 only (workers get the master's host, which was checked there)."""
    host = environment.host
    if not host:
        return
    try:
        address = ipaddress.ip_address(urlsplit(host).hostname or "")
    except ValueError:
        address = None
    if address is None or address not in ipaddress.ip_network("127.0.0.0/8"):
        raise ValueError(f"refusing to send load to {host!r}: this locustfile targets 127.0.0.0/8 only "
                         f"(an IP address such as http://127.0.0.1:18080)")
