"""Smoke tests of the benchmark harness's own logic: no database, no worker, no timing.

    .venv/bin/python -m pytest benchmarks/peerbench -q

Not collected by ``make test`` (its testpaths are ``tests/``).
"""

# ruff: noqa: RUF001, RUF003 (typography: ×, – as the report prints them)
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ceiling
import harness
import report


def test_percentile_interpolates():
    assert harness.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert harness.percentile([5], 0.99) == 5
    assert harness.percentile(list(range(101)), 0.99) == 99


def test_mix_is_20_percent_sleep_5_percent_flaky_and_reproducible():
    kinds = harness.mix(1000)
    assert Counter(kinds) == {"sleep": 200, "flaky": 50, "quick": 750}
    assert kinds == harness.mix(1000)


def test_single_job_workers_get_one_process_per_slot():
    class OneAtATime(harness.Contender):
        concurrency_in_process = False

    assert harness.processes_for(OneAtATime(), 4, 1) == (4, 1)
    assert harness.processes_for(harness.Contender(), 4, 1) == (1, 4)


def test_marks_round_trip(tmp_path, monkeypatch):
    import marks

    monkeypatch.setattr(harness, "MARKS", tmp_path / "marks.log")
    monkeypatch.setenv("BENCH_MARKS", str(tmp_path / "marks.log"))
    monkeypatch.setattr(marks, "_fd", None)
    harness.reset_marks()
    marks.start("mark", {"t": 12.5})
    marks.done("quick")
    marks.record("tick")
    lines = harness.read_marks()
    assert [line[:3] for line in lines[:1]] == [["start", "mark", "12.5"]]
    assert lines[1][:2] == ["done", "quick"] and lines[2][0] == "tick"


def test_ceiling_scripts_claim_with_skip_locked():
    assert "LIMIT 50 FOR UPDATE SKIP LOCKED" in ceiling.SCRIPTS["drain"](50)
    assert "generate_series(1, 50)" in ceiling.SCRIPTS["enqueue"](50)
    life = ceiling.SCRIPTS["lifecycle"](1)
    assert life.index("INSERT") < life.index("SKIP LOCKED") < life.index("'completed'")


def fake_results() -> dict:
    def w(rate, **extra):
        return {"rate": rate, "seconds": 1000 / rate, "ok": True, "how": "checked",
                "rss_mib": 50.0, "connections": 2, **extra}

    runs = {
        "w1-single": {"edgejobs-pg": [w(500), w(600)], "pgqueuer": [w(1000), w(1000)]},
        "w1-bulk": {"edgejobs-pg": [w(2000), w(2000)], "pgqueuer": [w(20000), w(25000)]},
        "w2-c1": {"edgejobs-pg": [w(400), w(500)], "pgqueuer": [w(200), w(250)],
                  "edgejobs-pg-b50": [w(1500), w(1600)]},
        "w2-p2": {"edgejobs-pg": [w(600), w(700)], "pgqueuer": [{"error": "boom"}, w(300)]},
        "w3": {"edgejobs-pg": [{"p50_ms": 4.0, "p99_ms": 9.0, "processes": 1}] * 2,
               "pgqueuer": [{"p50_ms": 8.0, "p99_ms": 9.0, "processes": 1}] * 2},
        "w4": {"edgejobs-pg": [w(200, ticks=3, cron="every second")] * 2,
               "pgqueuer": [w(100, ticks=3, cron="every second")] * 2},
    }
    info = {"bulk_api": "x", "concurrency_in_process": True, "retries": True,
            "cron": "every second", "notes": [], "version": "1"}
    return {
        "machine": {"cpus": 2, "cpu": "test", "mem_gib": 1, "kernel": "k", "postgresql": "15",
                    "pg_settings": {}, "redis": "7", "python": "3.13", "python_peers": "3.13",
                    "pgbench": "pgbench 15", "commit": "abc", "started": "now",
                    "load_start": (1.0, 1.0, 1.0), "minutes": 1},
        "info": {"edgejobs-pg": info, "pgqueuer": info}, "skipped": {}, "reps": 2,
        "quick": False, "runs": runs,
        "cases": {"w1-single": {"n": 10}, "w2-c1": {"n": 10},
                  "w3": {"n": 5, "gap": 0.02, "concurrency": 4},
                  "w4": {"n": 100, "concurrency": 4}},
        "ceiling": {"drain-1-1": [{"rate": 1000}, {"rate": 1000}],
                    "lifecycle-1-1": [{"rate": 800}, {"rate": 800}]},
    }


def test_report_gives_per_repetition_ratios_and_reports_failures():
    text = report.render(fake_results(), "images/benchmarks.png")
    assert text.startswith("---\norphan: true\n---")
    # W2 c=1: 400/200 and 500/250 -> 2.00x both repetitions
    assert "| pgqueuer (PostgreSQL) | 225 (200–250) | 2.00× (2.00–2.00) |" in text
    # W1 single: 500/1000, 600/1000
    assert "0.55× (0.50–0.60)" in text
    # a failed repetition is left out of the ratio, not counted as zero
    assert "| 300 | 2.33× |" in text
    # latency: the peer's p50 over edgejobs' (> 1: edgejobs picks up sooner)
    assert "2.00× (2.00–2.00)" in text
    # fraction of the pgbench ceiling, per repetition: 400/1000, 500/1000
    assert "| drain, concurrency 1 (batch 1) | 0.45 (0.40–0.50) |" in text
    assert "failed: boom" in text


def test_before_after_gives_now_over_before_per_repetition():
    machine = {"commit": "abc1234", "cpus": 2, "cpu": "x", "postgresql": "15", "python": "3.13",
               "load_start": [0.1, 0.1, 0.1], "minutes": 3}
    results = {"baseline": "27df728", "machine": machine, "reps": 2, "runs": {
        "w1-single": {"edgejobs-pg": [{"rate": 110.0}, {"rate": 90.0}],
                      "before-pg": [{"rate": 100.0}, {"rate": 100.0}]},
        "w3": {"edgejobs-sqlite": [{"p50_ms": 5.0}], "before-sqlite": [{"p50_ms": 10.0}]},
        "w4": {"edgejobs-pg": [{"rate": 1.0}], "before-pg": [{"error": "boom"}]},
    }}
    page = report.before_after(results)
    assert "| w1-single | PostgreSQL | 100/s (90–110) | 100/s (100–100) | 1.000 (0.900–1.100) |" \
        in page
    assert "| w3 | SQLite | 5.0 ms | 10.0 ms | 0.500 |" in page
    assert "| w4 | PostgreSQL | 1/s | — | — |" in page
