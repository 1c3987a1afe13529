"""Real ``runworker`` processes against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Workers:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, edgejobs: dict[str, Any] | None = None,
              command: str = "runworker", new_session: bool = False,
              env: dict[str, str] | None = None,
              url: str | None = None) -> subprocess.Popen[bytes]:
        """``url``: the database URL the process uses (a pooler's, say); by default the
        test database's own."""
        env = {**os.environ, **(env or {})}
        env["DATABASE_URL"] = url or database_url()
        env["EDGEJOBS_JSON"] = json.dumps(edgejobs or {})
        env["EDGEJOBS_LOG_LEVEL"] = "INFO"
        log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "testproject" / "manage.py"), command, *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            proc.wait(30)


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def workers(tmp_path: Path, transactional_db: None) -> Iterator[Workers]:
    w = Workers(tmp_path)
    yield w
    w.stop_all()


@pytest.fixture
def wait_exit() -> Callable[..., int]:
    def wait(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
        return proc.wait(timeout)

    return wait
