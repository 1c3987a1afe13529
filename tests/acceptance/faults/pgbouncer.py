"""A real PgBouncer (Debian's ``pgbouncer`` package) in front of the test database, started
and stopped by the fault suite on a free port of its own.

Nothing is installed here: ``scripts/ensure-pgbouncer`` (run by ``make test``, ``make chaos``
and ``.ci/run``) installs the package. Without it the scenarios skip, saying so.
``EDGEJOBS_PGBOUNCER`` names another executable; ``EDGEJOBS_PGBOUNCER_PORT`` fixes the port.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from django.db import connection


def executable() -> str | None:
    for candidate in (os.environ.get("EDGEJOBS_PGBOUNCER"), shutil.which("pgbouncer"),
                      "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Unavailable(Exception):
    """PgBouncer is not installed, or would not start here; the message says why."""


class PgBouncer:
    """One pgbouncer process: ``pool_mode`` ``transaction`` or ``session``, every database of
    the test database's server reachable through it under its own name."""

    def __init__(self, pool_mode: str, *, pool_size: int):
        settings = connection.settings_dict
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.server_host = settings["HOST"] or "127.0.0.1"
        self.server_port = int(settings["PORT"] or 5432)
        self.user = settings["USER"] or "postgres"
        self.password = settings["PASSWORD"] or ""
        self.dbname = settings["NAME"]
        self.port = int(os.environ.get("EDGEJOBS_PGBOUNCER_PORT") or free_port())
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        """The test database, through the pooler."""
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgres://{auth}@127.0.0.1:{self.port}/{self.dbname}"

    def direct_url(self) -> str:
        """The test database, bypassing the pooler (for ``LISTEN_DATABASE``)."""
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgres://{auth}@{self.server_host}:{self.server_port}/{self.dbname}"

    def _config(self) -> str:
        return "\n".join([
            "[databases]",
            f"* = host={self.server_host} port={self.server_port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {self.dir}/userlist.txt",
            f"pool_mode = {self.pool_mode}",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 500",
            # A client waiting longer than this for a server connection is an error, not a hang.
            "query_wait_timeout = 60",
            "ignore_startup_parameters = extra_float_digits",
            "",
        ])

    def start(self) -> None:
        exe = executable()
        if exe is None:
            raise Unavailable("pgbouncer is not installed: scripts/ensure-pgbouncer installs "
                              "Debian's package (make test and .ci/run run it)")
        self.dir = Path(tempfile.mkdtemp(prefix="edgejobs-pgbouncer-"))
        self.dir.chmod(0o755)  # readable by the user pgbouncer switches to (below)
        (self.dir / "userlist.txt").write_text(f'"{self.user}" "{self.password}"\n')
        (self.dir / "pgbouncer.ini").write_text(self._config())
        command = [exe, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            user = _unprivileged_user()
            if user is None:
                raise Unavailable("running as root, and no user 'postgres' or 'nobody' for "
                                  "pgbouncer -u")
            command += ["-u", user]
        with (self.dir / "pgbouncer.log").open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"pgbouncer exited with status {self.proc.returncode}: "
                                  f"{self.log()[-2000:]}")
            with contextlib.suppress(psycopg.OperationalError):
                self.connect().close()
                return
            time.sleep(0.1)
        self.stop()
        raise Unavailable(f"pgbouncer did not accept connections within 15 s: {self.log()[-2000:]}")

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A client connection through the pooler, autocommit."""
        return psycopg.connect(host="127.0.0.1", port=self.port, dbname=self.dbname,
                               user=self.user, password=self.password or None,
                               connect_timeout=2, autocommit=True, **kwargs)

    def log(self) -> str:
        path = self.dir / "pgbouncer.log" if self.dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self, keep_log: Path | None = None) -> None:
        """Stop pgbouncer (its server connections to the test database end with it); copy
        its log to ``keep_log`` first, if given."""
        if keep_log is not None:
            keep_log.write_text(self.log())
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: immediate shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _unprivileged_user() -> str | None:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None
