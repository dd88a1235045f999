"""Load for experiments: Locust in its own processes, every request recorded for analysis.

The harness side never imports locust (gevent's monkey-patching must stay out of the harness
process); only `_locust_plugin.py`, which Locust itself loads beside the user's locustfile, does.

    spec = LoadSpec(locustfile=Path("locustfiles/ai_agent.py"), users=20, spawn_rate=10,
                    duration_s=60, host="http://127.0.0.1:18080")
    with LoadRun(spec) as load:
        load.start(run_dir)
        load.wait(spec.duration_s + 30)
    load.stats().samples.total.p99_ms, load.samples()  # pandas DataFrame, SAMPLE_COLUMNS
"""

from harness.load._live import LivePoint
from harness.load._run import LoadRun
from harness.load._samples import SAMPLE_COLUMNS
from harness.load._spec import SHAPES, LoadSpec
from harness.load._stats import LoadStats, RequestStats, StatsTable

__all__ = [
    "LivePoint",
    "LoadRun",
    "LoadSpec",
    "LoadStats",
    "RequestStats",
    "SAMPLE_COLUMNS",
    "SHAPES",
    "StatsTable",
]
