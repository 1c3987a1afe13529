"""A handler raising a ``BaseException`` that is not an ``Exception`` (``asyncio.CancelledError``,
also from ``async def`` handlers; ``GeneratorExit``; a custom subclass) fails its attempt like
any error: retried while attempts remain, then failed. It once stranded the job: the worker
logged "the job will be reclaimed" but kept heart-beating, so nothing reclaimed it and
``runworker --burst`` never exited."""

from __future__ import annotations

import asyncio
import threading

import pytest

from django_edgejobs import enqueue, get_job
from django_edgejobs.runtime.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


class Custom(BaseException):
    pass


def raising(exc_type):
    def handler(payload, ctx):
        raise exc_type("boom")
    return handler


async def async_cancelled(payload, ctx):
    raise asyncio.CancelledError("cancelled inside")


async def async_task_cancelled(payload, ctx):
    task = asyncio.ensure_future(asyncio.sleep(10))
    asyncio.get_running_loop().call_soon(task.cancel)
    await task  # raises CancelledError into the handler


CASES = {
    "CancelledError": (raising(asyncio.CancelledError), "CancelledError"),
    "GeneratorExit": (raising(GeneratorExit), "GeneratorExit"),
    "custom": (raising(Custom), "Custom"),
    "async-CancelledError": (async_cancelled, "CancelledError"),
    "async-cancelled-await": (async_task_cancelled, "CancelledError"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_base_exception_fails_the_attempt_and_retries_in_a_threaded_worker(register, case):
    handler, name = CASES[case]
    register("t.base", handler, max_attempts=2, retry_delay=0)
    job = enqueue("t.base")
    worker = Worker(["default"], concurrency=2, burst=True, poll_interval=0.05)
    done = threading.Event()
    codes = []
    thread = threading.Thread(target=lambda: (codes.append(worker.run()), done.set()),
                              daemon=True)
    thread.start()
    if not done.wait(30):  # the old code never got here: the job stayed processing
        worker.request_stop()
        thread.join(30)
        pytest.fail(f"burst did not exit; job is {get_job(job.id).status}")
    stored = get_job(job.id)
    assert codes == [0]
    assert stored.status == "failed" and stored.attempts == 2
    assert stored.last_error.startswith(name)
    assert [e["exception"].rsplit(".", 1)[-1] for e in stored.error_history] == [name, name]


@pytest.mark.parametrize("case", list(CASES))
def test_a_base_exception_fails_the_attempt_in_run_once(register, case):
    handler, name = CASES[case]
    register("t.base", handler, max_attempts=2, retry_delay=0)
    job = enqueue("t.base")
    assert Worker(["default"], worker_id="base-exc").run_once() == 1
    stored = get_job(job.id)
    assert stored.status == "pending" and stored.attempts == 1
    assert stored.last_error.startswith(name)
