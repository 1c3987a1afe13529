"""The one side effect the benchmark's jobs share: a line appended to the marks file.

Every contender's ``mark``, ``sleep``, ``flaky`` and ``tick`` jobs call :func:`record`, so the
driver reads start times, completions and cron ticks the same way for all of them. The no-op
of W2 does not call it: W2 reads each queue's own state instead. Stdlib only: the workers of
both virtual environments import it.
"""

from __future__ import annotations

import os
import time

_fd: int | None = None


def record(*fields: object) -> None:
    """Append ``fields`` and the current time as one line (one ``write``: atomic with O_APPEND)."""
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["BENCH_MARKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, (" ".join(str(f) for f in (*fields, repr(time.time()))) + "\n").encode())


def start(kind: str, payload: dict) -> None:
    """A job of ``kind`` starts: ``start KIND ENQUEUED_AT NOW`` (ENQUEUED_AT from the payload)."""
    record("start", kind, payload.get("t", 0))


def done(kind: str) -> None:
    record("done", kind)


SLEEP_SECONDS = 0.05
