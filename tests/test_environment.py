"""Specifications of harness/environment.py: the harness's HARNESS_* variables are named and read in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import environment

HARNESS = Path(environment.__file__).resolve().parent
READ = re.compile(r"""(?:environ(?:\.get)?|getenv)\s*[(\[]\s*f?["']HARNESS_""")

#: Settings layers of their own: each maps HARNESS_<FIELD> onto a dataclass field with units and
#: checks; and the load runner's private protocol with its Locust child (set by load/_command.py).
OWN_SETTINGS = {"environment.py", "platforms/local/settings.py", "platforms/kind/settings.py",
                "load/_locust_plugin.py"}
#: Still read where they are used; to move behind environment.get (see the H10 report).
NOT_YET_MOVED: set[str] = set()


def test_a_listed_variable_is_read_and_an_empty_one_counts_as_unset() -> None:
    assert environment.get("HARNESS_PLATFORM", {"HARNESS_PLATFORM": "kind"}) == "kind"
    assert environment.get("HARNESS_PLATFORM", {"HARNESS_PLATFORM": ""}) is None
    assert environment.get_path("HARNESS_BASELINE_DIR", {"HARNESS_BASELINE_DIR": "b"}) == Path("b")


def test_an_unlisted_variable_is_refused_naming_the_list() -> None:
    with pytest.raises(KeyError, match="VARIABLES"):
        environment.get("HARNESS_NO_SUCH_THING", {})


def test_no_other_module_reads_a_harness_variable_from_the_environment() -> None:
    readers = {str(path.relative_to(HARNESS)) for path in HARNESS.rglob("*.py")
               if READ.search(path.read_text(encoding="utf-8"))}
    assert readers - OWN_SETTINGS - NOT_YET_MOVED == set()
