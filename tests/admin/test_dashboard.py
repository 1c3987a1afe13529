"""The dashboard: its numbers (backdated rows, no sleeps), its charts and its links."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import add_cron, pause_cron
from django_edgejobs.admin import stats
from django_edgejobs.models import Job, Worker
from django_edgejobs.store import get_store
from tests.admin.conftest import make_job

pytestmark = pytest.mark.django_db

URL = "admin:django_edgejobs_dashboard"


def finished(status: str, ago: timedelta, wait: float = 1.0, run: float = 2.0, **kw) -> Job:  # type: ignore[no-untyped-def]
    now = timezone.now()
    done = now - ago
    started = done - timedelta(seconds=run)
    return make_job(status, completed_at=done, started_at=started,
                    run_at=started - timedelta(seconds=wait), **kw)


def test_throughput_counts_each_bucket_of_the_hour_and_the_day():
    now = get_store().db_now()
    finished("completed", timedelta(seconds=5))
    finished("completed", timedelta(seconds=10))
    finished("failed", timedelta(minutes=2, seconds=1))
    finished("completed", timedelta(minutes=90))
    finished("completed", timedelta(hours=30))  # outside both windows
    hour = stats.throughput(stats.hour_buckets(now))
    assert sum(hour["completed"]) == 2 and sum(hour["failed"]) == 1
    assert hour["completed"][-1] + hour["completed"][-2] == 2  # this minute or the last
    assert hour["failed"][-3] + hour["failed"][-4] == 1
    day = stats.throughput(stats.day_buckets(now))
    assert sum(day["completed"]) == 3 and sum(day["failed"]) == 1


def test_buckets_end_after_now_and_are_aligned():
    now = timezone.now()
    hour = stats.hour_buckets(now)
    assert hour.end > now >= hour.end - timedelta(minutes=1)
    assert hour.end.second == 0 and hour.end.microsecond == 0
    assert len(hour.edges()) == 60 and hour.edges()[0][0] == hour.start
    day = stats.day_buckets(now)
    assert day.end.minute == 0 and len(day.edges()) == 24


def test_latency_percentiles_per_bucket():
    now = get_store().db_now()
    for i in range(1, 21):
        finished("completed", timedelta(seconds=30), wait=i, run=i * 10)
    buckets = stats.Buckets(stats.hour_buckets(now).end, timedelta(minutes=5), 12)
    values = stats.latency(buckets)
    # Within one histogram bucket (a factor of 10^0.1) of the exact nearest-rank figures.
    assert values["wait_p50"][-1] == pytest.approx(10, rel=0.26)
    assert values["wait_p95"][-1] == pytest.approx(19, rel=0.26)
    assert values["run_p95"][-1] == pytest.approx(190, rel=0.26)
    assert values["run_p50"][0] is None  # no completion an hour ago


def test_latency_comes_from_every_job_of_the_window_through_the_rollup():
    """The dashboard sampled the latest 100 completions per bucket: for an hour it showed wait
    p50 149 ms where SQL over the same jobs gave 1.40 s. Now: every job, rolled up per
    minute by the rollup service, and read back from the rollup alone."""
    import random

    from django_edgejobs.models import LatencyMinute
    from django_edgejobs.services import rollup

    rng = random.Random(7)
    waits = []
    # 400 jobs over 40 minutes; the most recent completions are the fast ones, so a sample
    # of the latest would be far off.
    for i in range(400):
        wait = 0.05 if i < 150 else rng.uniform(1.0, 3.0)
        waits.append(wait)
        finished("completed", timedelta(minutes=10, seconds=i * 6), wait=wait, run=0.2)
    exact_p50 = stats.percentile(waits, 50)
    exact_p95 = stats.percentile(waits, 95)
    now = get_store().db_now()
    assert rollup.roll_due(now) >= 40
    assert sum(LatencyMinute.objects.values_list("completed", flat=True)) == 400
    day = stats.day_buckets(now)
    merged = stats.latency(stats.Buckets(day.end, timedelta(hours=2), 1), now)
    assert merged["wait_p50"][0] == pytest.approx(exact_p50, rel=0.26)
    assert merged["wait_p95"][0] == pytest.approx(exact_p95, rel=0.26)
    assert merged["run_p50"][0] == pytest.approx(0.2, rel=0.26)
    # Read from the rollup: the jobs can go (pruned, say) and the figures stay.
    Job.objects.all().delete()
    assert stats.latency(stats.Buckets(day.end, timedelta(hours=2), 1), now) == merged


def test_the_rollup_rolls_closed_minutes_again_for_late_completions_and_fills_gaps():
    from django_edgejobs.models import LatencyMinute
    from django_edgejobs.services import rollup

    now = get_store().db_now()
    minute = rollup.floor_minute(now - timedelta(minutes=2))
    finished("completed", now - minute - timedelta(seconds=1))  # in that minute
    rollup.roll_due(now)
    assert LatencyMinute.objects.get(minute=minute).completed == 1
    # A completion written late into the same minute: not counted by the next passes (a
    # minute is rolled twice, not at every pass), counted by its last roll, REVISIT after it
    # closed; after that, never rolled again.
    finished("completed", now - minute - timedelta(seconds=2))
    rollup.roll_due(now)
    assert LatencyMinute.objects.get(minute=minute).completed == 1
    last = minute + rollup.MINUTE + rollup.REVISIT
    assert minute in rollup.due_minutes(last) and minute not in rollup.due_minutes(now)
    rollup.roll_due(last)
    assert LatencyMinute.objects.get(minute=minute).completed == 2
    assert minute not in rollup.due_minutes(last + timedelta(minutes=5))
    # Minutes of the last day without a rollup are filled, newest first, PER_PASS a pass.
    old = rollup.floor_minute(now - timedelta(hours=5))
    finished("completed", now - old - timedelta(seconds=30))
    LatencyMinute.objects.all().delete()
    passes = 0
    while not LatencyMinute.objects.filter(minute=old + timedelta(seconds=0)).exists():
        rollup.roll_due(now)
        passes += 1
        assert passes < 20
    assert LatencyMinute.objects.get(minute=old).completed == 1
    # Older than KEEP: deleted.
    LatencyMinute.objects.create(minute=rollup.floor_minute(now - timedelta(days=3)), rolled_at=now)
    rollup.roll_due(now)
    assert not LatencyMinute.objects.filter(minute__lt=now - rollup.KEEP).exists()


def test_queue_counts_oldest_due_failure_rate_stuck_overdue():
    now = timezone.now()
    make_job("pending", run_at=now - timedelta(minutes=10))
    make_job("pending", run_at=now - timedelta(seconds=5), queue="bees")
    make_job("pending", run_at=now + timedelta(hours=1))
    make_job("waiting")
    make_job("processing", lease_owner="nobody")
    finished("completed", timedelta(minutes=5))
    finished("failed", timedelta(minutes=5), queue="bees")
    finished("failed", timedelta(hours=5))
    data = stats.collect(get_store().db_now())
    rows = {r.queue: r for r in data["queues"]}
    assert rows["default"].counts == {"pending": 2, "waiting": 1, "processing": 1,
                                      "completed": 1}
    assert rows["default"].due == 1 and rows["bees"].due == 1
    assert data["due"] == 2
    assert data["oldest_due_age"] >= timedelta(minutes=9)
    assert data["totals_1h"] == {"completed": 1, "failed": 1, "cancelled": 0}
    assert data["failure_rate_1h"] == 0.5
    assert data["failure_rate_24h"] == pytest.approx(2 / 3)
    assert data["stuck"] == 1 and data["overdue"] == 1
    assert {"emails", "reports", "webhooks"} <= set(rows)  # configured queues always show


def test_workers_alive_dead_and_what_they_run():
    now = timezone.now()
    Worker.objects.create(id="w1", hostname="a", pid=1, concurrency=4)
    Worker.objects.create(id="w2", hostname="b", pid=2, concurrency=4,
                          last_heartbeat=now - timedelta(minutes=5))
    Worker.objects.create(id="w3", hostname="c", pid=3, concurrency=4, stopped_at=now)
    job = make_job("processing", lease_owner="w1", progress=20)
    rows = {r.worker.id: r for r in stats.workers(get_store().db_now())}
    assert set(rows) == {"w1", "w2"}  # a stopped worker is not shown
    assert rows["w1"].alive and not rows["w2"].alive
    assert rows["w1"].running_count == 1 and rows["w1"].running[0]["id"] == job.id


def test_next_cron_runs_skip_paused_schedules():
    add_cron("a", "*/5 * * * *", "t.a")
    add_cron("b", "0 0 1 1 *", "t.a")
    add_cron("c", "* * * * *", "t.a")
    pause_cron("c")
    runs = stats.next_cron_runs(timezone.now())
    assert [r.schedule.name for r in runs] == ["a", "b"]
    assert runs[0].at > timezone.now()


def test_the_page_shows_numbers_charts_and_links_to_the_filtered_list(admin_client):
    finished("completed", timedelta(minutes=3))
    finished("failed", timedelta(minutes=3), queue="bees")
    Worker.objects.create(id="w1", hostname="a", pid=1, concurrency=4)
    make_job("processing", lease_owner="w1")
    add_cron("nightly", "0 2 * * *", "t.a")
    response = admin_client.get(reverse(URL))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="edgejobs-chart"') == 6
    assert "<rect" in html and "<circle" in html
    assert "?queue=bees&amp;status=failed&amp;finished=1h" in html
    assert "?attention=stuck" in html and "?attention=overdue" in html
    assert "w1" in html and "nightly" in html and "At 02:00" in html
    # Following a number's link lists exactly what it counted.
    listed = admin_client.get(reverse("admin:django_edgejobs_job_changelist"),
                              {"queue": "bees", "status": "failed", "finished": "1h"})
    assert len(listed.context["cl"].result_list) == 1


def test_the_page_updates_in_place_every_ten_seconds_by_default(admin_client):
    html = admin_client.get(reverse(URL)).content.decode()
    assert 'http-equiv="refresh"' not in html  # no full-page reload
    assert 'django_edgejobs/live.js' in html and 'data-ej-live="10"' in html
    assert html.count("data-ej-live-region") == 12  # as-of, cards, 4 tables, 6 charts
    html = admin_client.get(reverse(URL), {"refresh": "30"}).content.decode()
    assert 'data-ej-live="30"' in html
    html = admin_client.get(reverse(URL), {"refresh": "1"}).content.decode()
    assert 'data-ej-live="10"' in html  # only the offered intervals


def test_the_app_index_and_the_job_list_link_to_the_dashboard(admin_client):
    url = reverse(URL)
    assert url in admin_client.get(reverse("admin:app_list",
                                           args=["django_edgejobs"])).content.decode()
    assert url in admin_client.get(
        reverse("admin:django_edgejobs_job_changelist")).content.decode()


def test_the_dashboard_uses_a_bounded_number_of_queries(admin_client,
                                                        django_assert_max_num_queries):
    for i in range(30):
        finished("completed", timedelta(minutes=i * 7))
    with django_assert_max_num_queries(60):
        admin_client.get(reverse(URL))


def test_only_the_minutes_without_a_rollup_are_read_from_the_jobs(monkeypatch):
    """The day chart's window ends at the next hour: the minutes still to come were each
    measured (a query apiece, up to 60: the dashboard's query count then depended on the time
    of day). With the day rolled, one read covers the last minutes, up to now."""
    from django_edgejobs.services import rollup

    now = get_store().db_now()
    day = stats.day_buckets(now)
    rollup.roll(rollup.closed_minutes(day.start, rollup.recent_start(now)), now)
    real, read = rollup.measure_range, []
    monkeypatch.setattr(rollup, "measure_range",
                        lambda lo, hi: read.append((lo, hi)) or real(lo, hi))
    rollup.minutes(day.start, day.end, now)
    [(lo, hi)] = read
    assert lo == rollup.recent_start(now) and now < hi <= now + rollup.MINUTE


def test_finished_counts_come_from_the_rollup_and_cost_no_job_reads():
    """The hour's counts per queue and type, the throughput charts and the cards are sums of
    the per-minute rollup: once rolled, the jobs can go (pruned) and the figures stay, and
    the rows read do not grow with the jobs the window holds."""
    from django_edgejobs.services import rollup

    for i in range(12):
        finished("completed", timedelta(minutes=10 + i), queue="bees")
    finished("failed", timedelta(minutes=20), type_="t.b")
    finished("cancelled", timedelta(minutes=30))
    finished("failed", timedelta(hours=5))
    now = get_store().db_now()
    day = stats.day_buckets(now)
    rollup.roll(rollup.closed_minutes(day.start, rollup.recent_start(now)), now)
    before = stats.collect(now)
    Job.objects.all().delete()
    after = stats.collect(now)
    for key in ("totals_1h", "totals_24h", "throughput_hour", "throughput_day"):
        assert after[key] == before[key], key
    assert before["totals_1h"] == {"completed": 12, "failed": 1, "cancelled": 1}
    assert before["totals_24h"] == {"completed": 12, "failed": 2}
    assert [(r.queue, r.counts) for r in after["queues"] if r.counts] == [
        ("bees", {"completed": 12, "failed": 1}), ("default", {"cancelled": 1})]
    assert [(r.type, r.counts) for r in after["types"]] == [
        ("t.b", {"failed": 1}), ("t.a", {"completed": 12, "cancelled": 1})]


def test_a_re_roll_counts_jobs_that_left_the_minute_as_zeros(admin_client):
    """A failed job retried after its minute was rolled leaves that minute: the last roll
    writes its (queue, type) as zeros (an upsert: concurrent rolls never collide)."""
    from django_edgejobs import retry_job
    from django_edgejobs.models import FinishedMinute
    from django_edgejobs.services import rollup

    job = finished("failed", timedelta(minutes=3), type_="t.b")
    now = get_store().db_now()
    minute = rollup.floor_minute(job.completed_at)
    rollup.roll([minute], now)
    assert FinishedMinute.objects.get(minute=minute, type="t.b").failed == 1
    assert retry_job(job.id)
    rollup.roll([minute], now)
    rollup.roll([minute], now)
    row = FinishedMinute.objects.get(minute=minute, type="t.b")
    assert (row.completed, row.failed, row.cancelled) == (0, 0, 0)
    assert stats.collect(now)["totals_1h"]["failed"] == 0


def test_without_any_rollup_the_counts_are_read_from_the_jobs():
    """No worker has rolled anything (none running, or a fresh install): the figures are
    still every job's, read from the jobs in one pass over the missing minutes."""
    finished("completed", timedelta(minutes=50))
    finished("failed", timedelta(hours=20))
    data = stats.collect(get_store().db_now())
    assert data["totals_1h"]["completed"] == 1
    assert data["totals_24h"] == {"completed": 1, "failed": 1}


def test_the_cards_links_list_the_jobs_the_cards_count(admin_client):
    """The 1 h and 24 h windows are whole minutes and hours (the charts' buckets): the list a
    card links to starts where the card's window does."""
    from django_edgejobs.admin.filters import finished_since

    now = get_store().db_now()
    assert finished_since("1h", now) == stats.hour_buckets(now).start
    assert finished_since("24h", now) == stats.day_buckets(now).start
    assert finished_since("2h", now) is None
    edge = stats.hour_buckets(now).start
    # 90 s in: still inside if a minute turns before the list reads the clock again.
    make_job("failed", completed_at=edge + timedelta(seconds=90))
    make_job("failed", completed_at=edge - timedelta(seconds=1))
    card = stats.collect(now)["totals_1h"]["failed"]
    listed = admin_client.get(reverse("admin:django_edgejobs_job_changelist"),
                              {"status": "failed", "finished": "1h"})
    assert card == len(listed.context["cl"].result_list) == 1


def test_post_is_not_allowed(admin_client):
    assert admin_client.post(reverse(URL)).status_code == 405


def test_jobs_past_their_expiry_are_not_due_nor_overdue():
    """A pending job past ``expires_at`` is never claimed (the supervisor cancels it): the
    dashboard's due and overdue counts leave it out, as the claim query does."""
    now = timezone.now()
    make_job("pending", run_at=now - timedelta(minutes=10),
             expires_at=now - timedelta(minutes=1))
    live = make_job("pending", run_at=now - timedelta(minutes=10),
                    expires_at=now + timedelta(hours=1))
    data = stats.collect(get_store().db_now())
    assert data["due"] == 1 and data["overdue"] == 1
    assert data["totals"]["pending"] == 2  # still pending until the supervisor cancels it
    assert data["oldest_due_age"] >= timedelta(minutes=9)
    assert list(Job.objects.due()) == [live]


def test_per_type_counts_put_the_types_with_failures_first():
    make_job("pending")
    make_job("processing", type_="t.b", lease_owner="w")
    finished("completed", timedelta(minutes=5))
    finished("completed", timedelta(minutes=5))
    finished("failed", timedelta(minutes=5), type_="t.b")
    finished("failed", timedelta(hours=3), type_="t.b")  # outside the hour
    rows = stats.types(get_store().db_now())
    assert [(r.type, r.counts) for r in rows] == [
        ("t.b", {"processing": 1, "failed": 1}),
        ("t.a", {"pending": 1, "completed": 2}),
    ]
    assert rows[0].failure_rate == 1.0 and rows[1].failure_rate == 0.0


def test_the_page_has_a_row_per_type_linked_to_its_jobs(admin_client):
    finished("failed", timedelta(minutes=5), type_="t.b")
    html = admin_client.get(reverse(URL)).content.decode()
    table = html[html.index('id="dashboard-types"'):]
    table = table[:table.index("</table>")]
    assert "?type=t.b&amp;status=failed&amp;finished=1h" in table
    assert "100.0 %" in table
    assert reverse("admin:django_edgejobs_failures") in html


def test_cards_that_need_attention_stand_out_only_when_not_zero(admin_client):
    html = admin_client.get(reverse(URL)).content.decode()
    assert "ej-alert" not in html
    finished("failed", timedelta(minutes=5))
    make_job("processing", lease_owner="nobody")  # stuck
    html = admin_client.get(reverse(URL)).content.decode()
    cards = re.findall(r'<li class="ej-card( ej-alert)?"><a href="[^"]*"><span '
                       r'class="ej-number">[^<]*</span><span class="ej-label">([^<]*)</span>',
                       html)
    assert [label for alert, label in cards if alert] == ["Failed, 1 h", "Failed, 24 h",
                                                          "Stuck"]
    assert "Overdue" in [label for _, label in cards]
