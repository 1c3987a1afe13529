"""Module-level Tasks for the tests (a Task must be importable by its module path).

The first ones are those of Django's own ``tests/tasks/tasks.py``; the rest use this app's
options. Tasks record what they saw in ``CALLS`` (tests clear it)."""

from __future__ import annotations

from django.tasks import TaskContext, task

from django_edgejobs import PermanentError, Retry

CALLS: list[tuple[str, object]] = []


@task()
def noop_task(*args, **kwargs):
    CALLS.append(("noop", {"args": list(args), "kwargs": kwargs}))
    return None


@task()
async def noop_task_async(*args, **kwargs):
    CALLS.append(("noop_async", {"args": list(args), "kwargs": kwargs}))
    return None


@task()
def calculate_meaning_of_life():
    return 42


@task()
async def async_meaning_of_life():
    return 42


@task(max_attempts=1)
def failing_task_value_error():
    raise ValueError("This Task failed due to ValueError")


@task(max_attempts=1)
def failing_task_system_exit():
    raise SystemExit("This Task failed due to SystemExit")


@task(max_attempts=1)
def failing_task_keyboard_interrupt():
    raise KeyboardInterrupt("This Task failed due to KeyboardInterrupt")


@task(max_attempts=1)
def complex_exception():
    raise ValueError(ValueError("This task failed"))


@task(max_attempts=1)
def complex_return_value():
    # Return something which isn't JSON serializable nor picklable.
    return lambda: True


@task(takes_context=True)
def get_task_id(context):
    return context.task_result.id


@task(takes_context=True)
def check_context(context, attempt):
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt
    return context.attempt


@task(takes_context=True, max_attempts=3, retry_delay=0)
def fails_then_succeeds(context, failures):
    """Fails its first ``failures`` attempts; returns the attempts it saw."""
    CALLS.append(("fails_then_succeeds", context.attempt))
    if context.attempt <= failures:
        raise ConnectionError(f"attempt {context.attempt} failed")
    return {"attempt": context.attempt, "worker_ids": context.task_result.worker_ids,
            "errors": len(context.task_result.errors)}


@task(takes_context=True)
async def async_with_context(context, value):
    return {"attempt": context.attempt, "value": value, "id": context.task_result.id}


@task()
def record(name):
    CALLS.append(("record", name))
    return name


@task()
def returns(value):
    return value


@task(max_attempts=3)
def permanent():
    raise PermanentError("no point in retrying")


@task(max_attempts=3)
def retry_later():
    raise Retry(delay=3600)


@task(max_attempts=5, retry_delay=7, retry_backoff=False, retry_delay_max=9, timeout=30,
      tags=["mail", "welcome"], queue_name="emails", priority=-5)
def with_options(name):
    return f"hello {name}"


def _not_reachable_by_its_path():
    return "hidden"


#: A Task whose function's module path names the plain function, not this Task.
renamed = task()(_not_reachable_by_its_path)


@task(concurrency_key="account:{kwargs[account_id]}", concurrency_limit=2, rate_limit="10/s")
def sync_account(account_id):
    CALLS.append(("sync_account", account_id))
    return account_id
