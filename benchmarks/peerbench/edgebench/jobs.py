"""The six jobs of the benchmark (see benchmarks/peerbench/marks.py), as edgejobs handlers."""

import time

import marks

from django_edgejobs import job


@job("bench.noop")
def noop(payload, ctx):
    return None


@job("bench.mark")
def mark(payload, ctx):
    marks.start("mark", payload)


@job("bench.quick")
def quick(payload, ctx):
    marks.start("quick", payload)
    marks.done("quick")


@job("bench.sleep")
def sleep(payload, ctx):
    marks.start("sleep", payload)
    time.sleep(marks.SLEEP_SECONDS)
    marks.done("sleep")


@job("bench.flaky", max_attempts=2, retry_delay=0)
def flaky(payload, ctx):
    marks.start("flaky", payload)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    marks.done("flaky")


@job("bench.tick")
def tick(payload, ctx):
    marks.record("tick")
