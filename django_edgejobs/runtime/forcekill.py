"""``force_kill=True``: run each attempt in a child process that can be killed at its deadline.

The child is a fresh interpreter (forking a threaded worker is unsafe) in a session of its
own; it sets Django up with the parent's settings and database names, runs the handler and
reports its result or error as JSON lines through a pipe. The parent watches
``ctx.cancelled`` (set at the deadline, on lease loss or at shutdown) and kills the child when
it is set; the child leaves by itself when its parent dies.

In the child, ``ctx.set_progress`` works (through the parent); ``ctx.run``, waits and tokens
are refused: a child killed mid-step could not record its step reliably.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import traceback
import uuid
from typing import TYPE_CHECKING, Any

# The child (child_main) imports this module before it sets Django up: no models here.
from ..exceptions import EdgeJobsError, PermanentError, Retry, StepError
from ..registry import get_registry
from ..services.validation import check_result

if TYPE_CHECKING:
    from ..models import Job
    from ..registry import JobType
    from .context import JobContext

POLL = 0.05


class RemoteError(EdgeJobsError):
    """A handler running in a child process raised; its description and traceback are kept."""

    def __init__(self, description: str, tb: str, path: str):
        super().__init__(description)
        self.description = description
        self.tb = tb
        self.path = path


class ChildContext:
    """The ``ctx`` of a handler in a force-kill child."""

    def __init__(self, meta: dict[str, Any], send: Any):
        import threading

        self.job_id = meta["job_id"]
        self.type = meta["type"]
        self.queue = meta["queue"]
        self.attempt = meta["attempt"]
        self.max_attempts = meta["max_attempts"]
        self.payload = meta["payload"]
        self._dependencies = meta.get("dependencies", {})
        self.cancelled = threading.Event()  # never set: the parent kills instead
        self._send = send

    def set_progress(self, percent: float) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not (
            0 <= percent <= 100
        ):
            raise ValueError(f"progress must be a number from 0 to 100, got {percent!r}")
        self._send("progress", percent)

    def dependency_results(self) -> dict[uuid.UUID, Any]:
        """As ``JobContext.dependency_results`` (read by the parent before the child
        started)."""
        return {uuid.UUID(k): v for k, v in self._dependencies.items()}

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise StepError("steps, waits and tokens are not available in force_kill handlers: a "
                        "killed child cannot record them reliably; split the work into jobs")

    run = wait_for = wait_until = create_token = wait_for_token = _refuse
    prolong = on_timeout = _refuse


def _watch_parent(parent: int) -> None:
    """Leave when the worker is gone (e.g. killed with -9): no orphan keeps running."""
    import time

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(70)


def child_main(fd: int, parent: int) -> None:
    """The child: read the job from stdin, run it, report JSON lines on ``fd``."""
    import threading

    take_signals_back()

    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    out = os.fdopen(fd, "w", buffering=1)

    def send(kind: str, value: Any) -> None:
        out.write(json.dumps([kind, value]) + "\n")

    spec = json.loads(sys.stdin.read())
    os.environ["DJANGO_SETTINGS_MODULE"] = spec["settings"]
    import django
    from django.conf import settings

    for alias, overrides in spec["databases"].items():
        settings.DATABASES[alias].update(overrides)
    django.setup()
    from asgiref.sync import async_to_sync

    meta = spec["meta"]
    try:
        job_type = get_registry().require(meta["type"])
        ctx = ChildContext(meta, send)
        payload = job_type.load_payload(meta["payload"])
        if job_type.is_async:
            result = async_to_sync(job_type.func)(payload, ctx)
        else:
            result = job_type.func(payload, ctx)
        send("result", check_result(result))
    except Retry as exc:
        send("retry", exc.delay)
    except BaseException as exc:  # report everything, SystemExit included
        cls = type(exc)
        text = str(exc)
        send("error", {
            "description": f"{cls.__name__}: {text}" if text else cls.__name__,
            "traceback": traceback.format_exc(),
            "path": f"{cls.__module__}.{cls.__qualname__}",
            "permanent": isinstance(exc, PermanentError),
        })
    finally:
        out.close()


#: What a terminal or a process manager sends to a whole process group.
GROUP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``Popen(argv, start_new_session=True, **kwargs)`` with the group signals blocked from
    the fork until the child unblocks them: between its fork and its ``setsid()`` a child
    is still in the worker's process group, and a Ctrl-C or a systemd stop arriving then
    killed it (the attempt failed with a broken pipe, 1 run in 3 under load). Blocked, such
    a signal waits in the child, which is in its own session by the time it looks."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)  # this thread only
    try:
        return subprocess.Popen(argv, start_new_session=True, **kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def take_signals_back() -> None:
    """In a child made by ``spawn``: drop the group signals that arrived while it was still in
    the worker's group (they were meant for the worker), then unblock them. The child is in
    a session of its own by now, so what comes later is meant for it."""
    handlers = {signum: signal.getsignal(signum) for signum in GROUP_SIGNALS}
    for signum in GROUP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # a pending, ignored signal is discarded
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def run_in_child(job_type: JobType, job: Job, ctx: JobContext) -> Any:
    """Run one attempt in a child process; return its result or raise what it raised.

    The child gets a session of its own, so a signal to the worker's process group
    (Ctrl-C, systemd) reaches only the worker, which then gives the attempt its grace."""
    from django.conf import settings
    from django.db import connections

    spec = {
        "settings": os.environ.get("DJANGO_SETTINGS_MODULE", ""),
        "databases": {alias: {"NAME": connections[alias].settings_dict["NAME"]}
                      for alias in settings.DATABASES},
        "meta": {"job_id": str(job.id), "type": job.type, "queue": job.queue,
                 "attempt": job.attempts, "max_attempts": job.max_attempts,
                 "payload": job.payload,
                 "dependencies": {str(k): v for k, v in ctx.dependency_results().items()}},
    }
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = spawn(
        [sys.executable, "-c", "import sys; from django_edgejobs.runtime.forcekill import "
         "child_main; child_main(int(sys.argv[1]), int(sys.argv[2]))",
         str(write_fd), str(os.getpid())],
        stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env,
    )
    os.close(write_fd)
    reader = os.fdopen(read_fd, "r")
    try:
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(spec).encode())
            process.stdin.close()
        except BrokenPipeError:  # it died before reading the job: say how it ended
            process.wait(5)
            raise _exited(process) from None
        while True:
            if ctx.cancelled.is_set():
                process.kill()
                process.wait(5)
                raise TimeoutError(f"attempt {job.attempts} of {job.type} was stopped: its "
                                   "child process was killed")
            ready, _, _ = select.select([reader], [], [], POLL)
            if not ready:
                continue
            line = reader.readline()
            if not line:  # the child is gone without a word
                process.wait(5)
                raise _exited(process)
            kind, value = json.loads(line)
            if kind == "progress":
                ctx.set_progress(value)
            elif kind == "result":
                return value
            elif kind == "retry":
                raise Retry(delay=value)
            elif kind == "error":
                if value["permanent"]:
                    raise PermanentError(value["description"].split(": ", 1)[-1])
                raise RemoteError(value["description"], value["traceback"], value["path"])
    finally:
        reader.close()
        if process.poll() is None:
            process.kill()
        process.wait(5)


def _exited(process: Any) -> RemoteError:
    return RemoteError(f"ChildProcessError: the handler's process exited with code "
                       f"{process.returncode} before reporting a result", "",
                       "builtins.ChildProcessError")
