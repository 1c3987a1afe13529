"""Run one workload against one contender once: ``drive.py CONTENDER WORKLOAD [JSON]``.

Prints ``RESULT {json}`` on its last line. The orchestrator (``benchmarks/peer_bench.py``) runs
it with the right interpreter: the project's ``.venv`` for edgejobs, the peers' venv for the rest.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import harness

CONTENDERS = {
    "edgejobs-pg": ("c_edgejobs", "EdgeJobs", {"store": "postgresql"}),
    "edgejobs-pg-b50": ("c_edgejobs", "EdgeJobs", {"store": "postgresql", "batch_size": 50}),
    "edgejobs-sqlite": ("c_edgejobs", "EdgeJobs", {"store": "sqlite"}),
    "edgejobs-sqlite-b50": ("c_edgejobs", "EdgeJobs", {"store": "sqlite", "batch_size": 50}),
    # edgejobs from another commit (peer_bench.py --baseline REF): old and new in one run
    "before-pg": ("c_edgejobs", "EdgeJobs", {"store": "postgresql", "before": True}),
    "before-sqlite": ("c_edgejobs", "EdgeJobs", {"store": "sqlite", "before": True}),
    "pgqueuer": ("c_pgqueuer", "PgQueuerContender", {}),
    "procrastinate": ("c_procrastinate", "Procrastinate", {}),
    "django-tasks-db-pg": ("c_dtdb", "DjangoTasksDB", {"store": "postgresql"}),
    "django-tasks-db-sqlite": ("c_dtdb", "DjangoTasksDB", {"store": "sqlite"}),
    "celery-redis": ("c_celery", "CeleryContender", {}),
    "huey-pg": ("c_huey", "Huey", {"store": "postgresql"}),
    "huey-sqlite": ("c_huey", "Huey", {"store": "sqlite"}),
    "huey-redis": ("c_huey", "Huey", {"store": "redis"}),
}


def build(name: str) -> harness.Contender:
    module, cls, kwargs = CONTENDERS[name]
    if module == "c_dtdb":  # Django is configured when the module is imported
        os.environ["BENCH_DTDB_STORE"] = kwargs["store"]
    if module == "c_huey":  # so is the huey instance
        os.environ["BENCH_HUEY_STORE"] = kwargs["store"]
    contender = getattr(__import__(module), cls)(**kwargs)
    contender.name = name
    return contender


if __name__ == "__main__":
    # SIGTERM unwinds (so the workers this run started are stopped) instead of killing.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name, workload = sys.argv[1], sys.argv[2]
    params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    harness.main(build(name), workload, params)
