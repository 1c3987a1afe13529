"""The maintenance services, one file each, each with ``run_once()``: the rescuer (jobs of
silent workers), the resumer (time waits that are over), the job expirer (``expires`` passed),
the token expirer (tokens past their timeout), the pruner (old history) and the latency
rollup (the dashboard's per-minute wait and run times). ``supervisor.py``
runs them together; every one is safe in any number of processes at once."""

from __future__ import annotations

from .expirer import JobExpirer, cancel_expired_jobs
from .pruner import Pruner, cleanup_old_job_events, cleanup_old_jobs
from .rescuer import Rescuer, reclaim_orphans, reclaim_stuck_jobs
from .resumer import Resumer, resume_due_waits
from .rollup import LatencyRollup
from .token_expirer import TokenExpirer

__all__ = ["JobExpirer", "LatencyRollup", "Pruner", "Rescuer", "Resumer", "TokenExpirer",
           "cancel_expired_jobs", "cleanup_old_job_events", "cleanup_old_jobs",
           "reclaim_orphans", "reclaim_stuck_jobs", "resume_due_waits"]
