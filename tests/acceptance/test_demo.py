"""Acceptance: ``manage.py demo`` (what ``make demo`` runs), twice on the same database."""

from __future__ import annotations

import re

import pytest

from django_edgejobs import list_crons, list_jobs

pytestmark = pytest.mark.acceptance


def run_demo(workers, wait_exit) -> str:
    proc = workers.start(command="demo")
    code = wait_exit(proc, timeout=90)
    out = workers.output(proc)
    assert code == 0, out
    return out


def test_demo_shows_retries_waits_cron_cache_and_admin_and_runs_twice(workers, wait_exit):
    for run in (1, 2):
        out = run_demo(workers, wait_exit)
        # The jobs table: retries and failures, as before.
        assert re.search(r"shop\.webhook +completed +3/4", out), out
        assert re.search(r"shop\.send_email +failed +1/5 +PermanentError", out), out
        # A durable wait that resumed, and a wait token completed through complete_token.
        assert re.search(r"shop\.follow_up +completed", out), out
        assert "events: added > processing > waiting > resumed > processing > completed" in out
        assert re.search(r"shop\.refund_approval +completed .*'refunded': True", out), out
        assert "(complete_token -> True)" in out
        assert re.search(r"curl -X POST .* http\S+/edgejobs/tokens/\S+/complete/", out), out
        # A cron tick fired by the worker's scheduler, then the schedule paused again.
        assert re.search(r"shop\.tick +completed +1/1 +\{'ticks': \d+\}", out), out
        assert "cron tick: schedule 'demo-tick' ('* * * * * */5': Every 5 seconds" in out
        # The edge cache, with metadata; the run counter shows the second run.
        assert "- cache: caches['edge_db'] (DatabaseEdgeCache" in out
        assert "get_metadata -> {'by': 'make demo'" in out
        assert f"increment('demo:runs') -> {run} " in out
        assert re.search(r"demo:last-run +ttl \d+s +metadata \{'by': 'make demo'", out), out
        # Where the admin is.
        assert re.search(r"- admin: http\S+/admin/ .*user 'admin' password 'admin'", out), out
        assert "open it with: make admin" in out
    # Idempotent: one schedule, left paused; nothing of the demo is still to run.
    assert [(s.name, s.enabled) for s in list_crons()] == [("demo-tick", False)]
    assert not list_jobs(status=["pending", "processing", "waiting"], limit=None)
