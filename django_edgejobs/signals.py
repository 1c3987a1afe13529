"""Django signals sent on job life-cycle changes. Receivers get ``job`` (a Job) as keyword.

- ``job_enqueued(job)``: a job was written (sent after the enqueueing transaction commits).
- ``job_started(job)``: a worker is about to run an attempt.
- ``job_completed(job, result)``: the attempt returned; the job is completed.
- ``job_failed(job, error)``: the job ended ``failed`` (attempts exhausted or a permanent error).
- ``job_retried(job, error, delay)``: an attempt failed and the job was rescheduled, or
  ``retry_job`` put it back (then ``error`` is None and ``delay`` 0).
- ``job_cancelled(job)``: a pending or waiting job was cancelled.
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
