"""One error tree for the harness; only the CLI turns these into exit codes.

    HarnessError                 exit 2 unless a subclass says otherwise
    ├── ConfigError              bad input: a file, a field, what was expected
    │   ├── ManifestError        a Kubernetes or Istio manifest is malformed or invalid
    │   ├── ResourceNotFoundError  `apply --delete` names a resource the mesh does not have
    │   └── UnsupportedFieldError  valid Istio, but the local translator cannot honour it
    ├── PlatformError            the platform could not do what was asked
    │   ├── MissingDependencyError  a binary (envoy, prometheus, ...) is not installed
    │   ├── PortInUseError       a port the mesh needs is taken
    │   ├── NotUpError           the mesh is not running
    │   └── ReadinessTimeout     something did not become ready in time
    ├── LoadError                Locust could not be started, did not start in time, or did not finish
    └── InconclusiveError        exit 3: no verdict possible (Prometheus unreachable, timed out, 5xx)
        └── SloQueryError        Prometheus ran an SLO's query but it yielded no single number
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum
from pathlib import Path
from typing import Any


class ExitCode(IntEnum):
    """The harness's exit codes, the one definition: value, word, and severity order.

    A suite's or a comparison's code is the worst of its parts, worst first 130 > 2 > 3 > 1 > 0: an
    interruption ranks above everything because the run did not finish; an invalid experiment ranks
    above a failure because a broken nightly would otherwise hide behind a known failure.
    """

    PASS = 0  # every SLO held
    FAIL = 1  # an SLO breached or the steady-state hypothesis deviated
    INVALID = 2  # bad input or a harness error: nothing was judged
    INCONCLUSIVE = 3  # no verdict possible (Prometheus unreachable, no data)
    INTERRUPTED = 130  # Ctrl-C, SIGTERM or a game day's abort: what was left did not run

    @property
    def word(self) -> str:
        """The verdict as reports print it: PASS, FAIL, ERROR, INCONCLUSIVE, INTERRUPTED."""
        return "ERROR" if self is ExitCode.INVALID else self.name

    @property
    def rank(self) -> int:
        """Higher is worse (SEVERITY order)."""
        return len(SEVERITY) - SEVERITY.index(self)

    @classmethod
    def of(cls, code: int) -> ExitCode:
        """The member for `code`; a code outside the documented ones counts as invalid."""
        try:
            return cls(code)
        except ValueError:
            return cls.INVALID

    @classmethod
    def worst(cls, codes: Iterable[int]) -> ExitCode:
        """The worst code by SEVERITY; PASS for no codes."""
        return max((cls.of(code) for code in codes), key=lambda code: code.rank, default=cls.PASS)


#: Worst first.
SEVERITY = (ExitCode.INTERRUPTED, ExitCode.INVALID, ExitCode.INCONCLUSIVE, ExitCode.FAIL, ExitCode.PASS)


def verdict_word(code: int) -> str:
    """The word for any exit code, also one outside the documented ones (`EXIT 7`)."""
    return ExitCode(code).word if code in ExitCode._value2member_map_ else f"EXIT {code}"


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code: ExitCode = ExitCode.INVALID

    def to_wire(self) -> dict[str, Any]:
        """The error as JSON-ready data, for the local daemon's control socket and its error file."""
        return {"type": type(self).__name__, "message": str(self), "exit_code": int(self.exit_code),
                "file": getattr(self, "file", None), "field": getattr(self, "field", None)}

    @staticmethod
    def from_wire(wire: Mapping[str, Any]) -> HarnessError:
        """The error `to_wire` described, rebuilt on this side: the same class (HarnessError when the
        type is not one of this tree's, such as a crash's KeyError), message, exit code, file and field."""
        cls = globals().get(str(wire.get("type", "")), HarnessError)
        if not (isinstance(cls, type) and issubclass(cls, HarnessError)):
            cls = HarnessError
        error = cls.__new__(cls)  # not __init__: subclasses (PortInUseError) take other arguments
        Exception.__init__(error, str(wire.get("message", "")))
        error.exit_code = ExitCode.of(int(wire.get("exit_code", ExitCode.INVALID)))
        if wire.get("file") is not None or wire.get("field") is not None or issubclass(cls, ConfigError):
            error.file, error.field = wire.get("file"), wire.get("field")  # type: ignore[attr-defined]
        return error


class ConfigError(HarnessError):
    """Bad input: names the file, the field and what was expected."""

    def __init__(self, message: str, *, file: str | Path | None = None, field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.message = message
        where = ": ".join(part for part in (self.file, self.field) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ManifestError(ConfigError):
    """A Kubernetes or Istio manifest is malformed or fails schema validation."""


class ResourceNotFoundError(ConfigError):
    """`apply --delete` named a resource the running mesh does not have (kubectl: NotFound, exit 1)."""


class UnsupportedFieldError(ConfigError):
    """Valid Istio that the local translator does not implement; never silently dropped."""


class PlatformError(HarnessError):
    """The platform could not carry out a request."""


class MissingDependencyError(PlatformError):
    """A required program is not installed; the message says how to get it."""


class PortInUseError(PlatformError):
    """A port the mesh needs is already bound by another process."""

    def __init__(self, port: int, purpose: str) -> None:
        self.port = port
        self.purpose = purpose
        super().__init__(
            f"port {port} ({purpose}) is already in use on 127.0.0.1; stop what holds it "
            f"or move the mesh's ports with HARNESS_BASE_PORT, HARNESS_INGRESS_PORT or HARNESS_PROMETHEUS_PORT"
        )


class NotUpError(PlatformError):
    """The mesh is not running; run `harness up` first."""


class ReadinessTimeout(PlatformError):
    """A component did not become ready within its deadline."""


class LoadError(HarnessError):
    """Locust could not be started, did not start in time, or did not finish when waited for.

    The message names the log file in the run directory whose tail says why.
    """


class InconclusiveError(HarnessError):
    """The run cannot reach a verdict: Prometheus unreachable, timed out or answering 5xx."""

    exit_code = ExitCode.INCONCLUSIVE


class SloQueryError(InconclusiveError):
    """Prometheus evaluated an SLO's query but it yielded no single number (several series, a range
    vector, an execution error); the SLO's verdict is "error" and the run inconclusive."""
