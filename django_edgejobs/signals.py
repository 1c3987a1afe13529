"""Django signals sent on job life-cycle changes. Receivers get ``job`` (a Job) as keyword.

- ``job_enqueued(job)``: a job was written (sent after the enqueueing transaction commits).
- ``job_started(job)``: a worker is about to run an attempt.
- ``job_completed(job, result)``: the attempt returned; the job is completed.
- ``job_failed(job, error)``: the job ended ``failed`` (attempts exhausted or a permanent error).
- ``job_retried(job, error, delay)``: an attempt failed and the job was rescheduled, or
  ``retry_job`` put it back (then ``error`` is None and ``delay`` 0).
- ``job_cancelled(job)``: a pending or waiting job was cancelled.

Cron schedules (``sender=CronSchedule``, after commit; see each signal below):

- ``cron_scheduled(schedule, created)``: a schedule began to fire (created, resumed).
- ``cron_unscheduled(schedule, removed)``: it stopped (paused, undeclared, removed).
- ``cron_fired(schedule, job, tick_at, triggered, initial)``: it enqueued a run.
"""

from django.dispatch import Signal

#: Sent with ``job`` after the transaction that enqueued the job commits.
job_enqueued = Signal()
#: Sent with ``job`` when a worker is about to run an attempt.
job_started = Signal()
#: Sent with ``job`` and ``result`` when an attempt returned and the job is completed.
job_completed = Signal()
#: Sent with ``job`` and ``error`` when the job ended ``failed``.
job_failed = Signal()
#: Sent with ``job``, ``error`` and ``delay`` when the job was rescheduled or retried.
job_retried = Signal()
#: Sent with ``job`` when a pending or waiting job was cancelled.
job_cancelled = Signal()

# -- cron schedules ------------------------------------------------------------------------
# Sent with ``sender=CronSchedule`` once the transaction that made the change commits, once
# per change that happened (a pause of a paused schedule sends nothing; of many workers
# syncing EDGEJOBS["CRON"] at once, only the one whose write took effect sends). They follow
# whether a schedule fires: "scheduled" when it starts to, "unscheduled" when it stops.

#: Sent with ``schedule`` and ``created``: a schedule began to fire. ``created=True``: it was
#: just created enabled (``add_cron``, a worker syncing ``EDGEJOBS["CRON"]``, the admin);
#: ``created=False``: a paused one was enabled (``resume_cron``, ``edit_cron(enabled=True)``,
#: a declaration enabled again). A schedule created paused sends nothing until enabled.
cron_scheduled = Signal()
#: Sent with ``schedule`` and ``removed``: a schedule stopped firing. ``removed=False``: it
#: was paused (``pause_cron``, ``edit_cron(enabled=False)``, dropped from or disabled in
#: ``EDGEJOBS["CRON"]``); ``removed=True``: it was deleted (``remove_cron``, the admin), paused
#: or not (``schedule.enabled`` says which; the instance is no longer in the database).
cron_unscheduled = Signal()
#: Sent with ``schedule``, ``job``, ``tick_at``, ``triggered`` and ``initial``: a schedule
#: enqueued a run. A tick: ``tick_at`` is its fire time, ``triggered=False``. ``trigger_cron``
#: (or the admin's "Run now"): ``tick_at=None``, ``triggered=True``. The ``run_on_init`` run:
#: ``tick_at=None``, ``triggered=True``, ``initial=True``. Skipped ticks, failed ticks and a
#: ``trigger_cron`` that found its previous run still active send nothing.
cron_fired = Signal()
