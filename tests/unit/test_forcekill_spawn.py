"""A force-kill child is born with the group signals blocked (``spawn``) and drops the ones
that reached it before it had a session of its own (``take_signals_back``): a Ctrl-C or a
systemd stop sent to the worker's group right as the child forks no longer kills the child
(the attempt failed with a broken pipe in 1 of 3 full runs under load)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django_edgejobs.runtime.forcekill import GROUP_SIGNALS, spawn


def blocked(status: str) -> set[int]:
    line = next(x for x in status.splitlines() if x.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


def test_the_child_is_born_with_the_group_signals_blocked_in_a_session_of_its_own() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    child = spawn([sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid()); "
                   "print(open('/proc/self/status').read())"], stdout=subprocess.PIPE)
    out, _ = child.communicate(timeout=30)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before  # ours restored
    first, status = out.decode().split("\n", 1)
    assert first == "True"
    assert {int(s) for s in GROUP_SIGNALS} <= blocked(status)


def test_a_group_signal_from_before_its_session_is_dropped_and_later_ones_count() -> None:
    code = ("import os, signal, sys, time\n"
            "time.sleep(0.5)  # the parent's SIGTERM arrives meanwhile: blocked, pending\n"
            "from django_edgejobs.runtime.forcekill import take_signals_back\n"
            "take_signals_back()\n"
            "print('alive', flush=True)\n"
            "sys.stdin.readline()\n"
            "time.sleep(30)\n")
    child = spawn([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                  env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    os.kill(child.pid, signal.SIGTERM)  # before it runs a line: as a group signal would
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline() == b"alive\n"
    child.stdin.write(b"go\n")
    child.stdin.flush()
    os.kill(child.pid, signal.SIGTERM)  # now it is meant for the child, and ends it
    assert child.wait(30) == -signal.SIGTERM
