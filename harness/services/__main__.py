"""Entry point `python -m harness.services`: environment -> config -> server; exit 2 on a bad variable."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from harness.errors import ConfigError
from harness.services.config import from_env


def main(environ: Mapping[str, str] = os.environ) -> int:
    """Run the service the environment describes; the exit code is 2 for a bad variable, else 0."""
    try:
        config = from_env(environ)
    except ConfigError as exc:
        print(f"harness.services: {exc}", file=sys.stderr)
        return exc.exit_code
    from harness.services.server import run  # after validation: a bad variable fails without loading uvicorn

    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
