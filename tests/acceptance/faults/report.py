"""Write docs/reliability.md from the rows the fault suite recorded (JSON lines).

    python tests/acceptance/faults/report.py RESULTS.jsonl [docs/reliability.md]
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

COLUMNS = ("lost", "duplicated", "stuck", "recovery_seconds")


def main(argv: list[str]) -> int:
    rows = [json.loads(line) for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    out = Path(argv[1] if len(argv) > 1 else "docs/reliability.md")
    rows.sort(key=lambda r: (float(r["scenario"].split(".")[0].rstrip("abcdefgh") or 0),
                             r["scenario"], r["database"]))
    lines = [
        "# Reliability: nothing lost, nothing twice",
        "",
        "Figures from the fault suite (`tests/acceptance/faults/`): real `runworker` processes,",
        "real signals and connection kills, the `qa` ledger as the oracle. `make chaos` runs it",
        "at full scale and rewrites this page; CI runs the same scenarios at a smaller scale.",
        "",
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.machine()}, Python {platform.python_version()}); scale: "
        f"{', '.join(sorted({r['scale'] for r in rows}))}.",
        "",
        "| scenario | database | lost | duplicated | stuck | recovery (s) | other figures |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        other = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.items()
                          if k not in (*COLUMNS, "scenario", "database", "scale"))
        cells = [str(r.get(c, "\u2013")) for c in COLUMNS]
        lines.append(f"| {r['scenario']} | {r['database']} | " + " | ".join(cells)
                     + f" | {other} |")
    lines += [
        "",
        "*duplicated* counts jobs whose handler ran to its end more than once. Delivery is",
        "at-least-once: after a `kill -9` or a frozen worker, the jobs that worker held run",
        "again: those it was running, those it had finished without the acknowledgement",
        "reaching the database, and those claimed but not begun (row 2 asserts duplicates",
        "only among those, each with exactly one extra attempt, and that every job it was",
        "running was reclaimed); a frozen worker's late writes are refused by the lease (row",
        "6). In rows 10",
        "and 12 the duplicates are healthy jobs that were running on a worker the poison job",
        "(or the test) killed; the tests assert that no other job ran twice.",
        "Row 5 (PostgreSQL restarted) runs only in `make chaos`: it restarts the server.",
        "Rows 17 and 18 put a TCP proxy the test controls (`proxy.py`) between the workers and",
        "PostgreSQL; the ledger and the test reach the database directly. Row 17 cuts it (every",
        "connection closed, new ones refused) for 12 s, four times `WORKER_TIMEOUT`, while",
        "three workers run jobs, and kills one worker meanwhile: no job of the two live workers",
        "may be reclaimed (before the fix, 4 were, and ran twice), and the dead worker's jobs",
        "are reclaimed `WORKER_TIMEOUT` after the database is back (*dead worker reclaimed",
        "after seconds*); *recovery* is the time from the end of the outage to the first",
        "outcome written. Row 18 leaves every connection open but forwarding nothing (half-",
        "open; new connections pass), once with the workers idle and once with all their slots",
        "busy, and enqueues new jobs; *recovery* is the time until those ran (the watchdog",
        "closes the silent connections after `WATCHDOG_TIMEOUT` 1.5 s; without it they had not",
        "run 60 s later).",
        "Rows 16 and 16b run the workers and two enqueuing processes through a real PgBouncer",
        "(Debian's 1.18, started by the test) in transaction and in session pooling, and kill",
        "one worker: *successful recorded failed*, *enqueue errors* and *session state errors",
        "logged* (`ProgrammingError`, `prepared statement \"…\"`) must be 0, duplicates only",
        "among the jobs the killed worker held. Rows 16c to 16e time the pickup of single jobs",
        "with a 3 s poll: behind a transaction pooler without `LISTEN_DATABASE` the workers poll",
        "(one warning line at start); with it, or in session pooling, notifications wake them.",
        "Row 15 runs no worker: it sends every admin URL of the app, with every method and",
        "every action name, as anonymous, inactive, non-staff, permission-less and view-only",
        "users, without CSRF tokens, with hostile text and SQL, and a bulk retry past the cap.",
        "*refused* counts login redirects, 400s, 403s and 405s; *unescaped* counts responses",
        "that held hostile text unescaped; *audit rows* are the `LogEntry` rows its actions",
        "wrote, one per object changed.",
        "Row 21: handlers raising a `BaseException` that is not an `Exception` fail their",
        "attempt (none stays `processing`) and `--burst` ends. Row 22: lone surrogates are",
        "refused at enqueue, naming the place, and errors holding them (and NUL) are stored",
        "escaped, the retry kept. Row 23 feeds two long-running workers (concurrency 4,",
        "`DEBUG = False`) in chunks and samples each worker's resident memory and the",
        "database's sessions (budget: concurrency + 6 per worker); *rss growth* is the larger",
        "worker's from the first tenth of the run to the end.",
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
