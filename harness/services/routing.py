"""Route templates like /api/v1/users/{id} matched against request paths, with 404 and 405 told apart."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.services.asgi import Request, Response

Handler = Callable[[Request], Awaitable[Response]]
_PARAM_RE = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Route:
    """`template` is also the metrics `route` label; `api` routes are the ones fault knobs act on."""

    method: str
    template: str
    handler: Handler
    api: bool = True
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.template))


@dataclass(frozen=True)
class Match:
    """A route found for a request, or (route None) the methods the path allows: empty means 404."""

    route: Route | None
    params: Mapping[str, str] = field(default_factory=dict)
    allowed: tuple[str, ...] = ()


class Router:
    """First matching route wins; a path known under another method is a 405 with `Allow`."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = tuple(routes)

    def match(self, method: str, path: str) -> Match:
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return Match(route, found.groupdict())
            allowed.append(route.method)
        return Match(None, allowed=tuple(allowed))


def _compile(template: str) -> re.Pattern[str]:
    """`{name}` matches one non-empty path segment; everything else matches literally."""
    parts, pos = [], 0
    for param in _PARAM_RE.finditer(template):
        parts += [re.escape(template[pos : param.start()]), f"(?P<{param.group(1)}>[^/]+)"]
        pos = param.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(parts) + "$")
