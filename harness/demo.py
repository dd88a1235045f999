"""`harness demo` (what `make run` runs): stand the mesh up, send a little traffic, say where things are."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from harness.platforms.base import Platform

REQUESTS = 50  # a little traffic: enough to see the 90/10 split and the premium route


def send_chat(client: httpx.Client, status: dict[str, Any], user: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(f"{status['ingress_url']}/api/v1/chat",
                       headers={"host": status["ingress_host"], **(headers or {})},
                       json={"user_id": f"user-{user}", "prompt": "hello mesh"})


def demo(platform: Platform) -> int:
    status = platform.up()
    codes: Counter[int] = Counter()
    served: Counter[str] = Counter()
    with httpx.Client(timeout=10.0, trust_env=False) as client:  # loopback: no proxy
        for i in range(REQUESTS):
            tier = {"x-user-tier": "premium"} if i % 5 == 0 else {}
            response = send_chat(client, status, i, tier)
            codes[response.status_code] += 1
            served[response.headers.get("x-served-by", "?")] += 1
    print(f"\nsent {REQUESTS} chat requests through {status['ingress_url']} "
          f"(Host: {status['ingress_host']}; every 5th as x-user-tier: premium)")
    print("  status codes: " + ", ".join(f"{code} x{n}" for code, n in sorted(codes.items())))
    print("  served by:    " + ", ".join(f"{pod} x{n}" for pod, n in served.most_common()))
    print(f"\nprometheus:    {status['prometheus_url']}  (try: sum by (destination_service_name) "
          "(rate(istio_requests_total[1m])))")
    print(f"run state:     {status['state_dir']}")
    print("try:           harness status | harness kill ai-agent-v1-us-east-0 | harness apply -f FILE | harness down")
    return 0 if set(codes) == {200} else 1
