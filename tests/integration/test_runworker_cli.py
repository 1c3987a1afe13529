"""``runworker`` as a newcomer meets it, in-process through ``call_command``: argument errors
that name the option and its range, a worker that cannot start its threads (it deregisters and
exits with one line, not a traceback), and docs/reference/runworker.md true to ``--help``."""

from __future__ import annotations

import io
import logging
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings

from django_edgejobs.checks import check_settings
from django_edgejobs.conf import MAX_CONCURRENCY
from django_edgejobs.management.commands.runworker import Command
from django_edgejobs.models import Worker as WorkerRow
from django_edgejobs.services.stats import queue_stats
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
RUNWORKER_MD = ROOT / "docs" / "reference" / "runworker.md"


def parse(*args: str) -> dict:
    """Parse ``runworker`` arguments as ``call_command`` does, without running a worker."""
    parser = Command().create_parser("manage.py", "runworker")
    return vars(parser.parse_args(list(args)))


def argument_error(*args: str) -> str:
    with pytest.raises(CommandError) as exc:
        parse(*args)
    return str(exc.value)


# -- argument errors ----------------------------------------------------------------------


def test_the_concurrency_bound_is_1024() -> None:
    assert MAX_CONCURRENCY == 1024


@pytest.mark.parametrize("value", ["0", "-1", "100000", "abc", "1.5", ""])
def test_a_bad_concurrency_names_the_option_and_the_range(value: str) -> None:
    assert argument_error("--concurrency", value) == (
        f"Error: argument --concurrency/-c: must be an integer from 1 to {MAX_CONCURRENCY}, "
        f"got {value!r}")


def test_the_concurrency_error_is_the_same_through_call_command() -> None:
    with pytest.raises(CommandError, match=r"^Error: argument --concurrency/-c: must be an "
                                           r"integer from 1 to 1024, got '0'$"):
        call_command("runworker", "--concurrency", "0")
    with pytest.raises(CommandError, match=r"argument --concurrency/-c: .* got '100000'$"):
        call_command("edgejobs_worker", "-c", "100000")


@pytest.mark.parametrize("value", ["1", "8", str(MAX_CONCURRENCY)])
def test_concurrency_up_to_the_bound_is_accepted(value: str) -> None:
    assert parse("--concurrency", value)["concurrency"] == int(value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--batch-size", "0"), "argument --batch-size: must be an integer >= 1, got '0'"),
        (("--batch-size", "x"), "argument --batch-size: must be an integer >= 1, got 'x'"),
        (("--max-jobs", "-3"), "argument --max-jobs: must be an integer >= 1, got '-3'"),
        (("--poll-interval", "0"),
         "argument --poll-interval: must be a number of seconds > 0, got '0'"),
        (("--poll-interval", "inf"),
         "argument --poll-interval: must be a number of seconds > 0, got 'inf'"),
        (("--poll-interval", "soon"),
         "argument --poll-interval: must be a number of seconds > 0, got 'soon'"),
        (("--shutdown-timeout", "-1"),
         "argument --shutdown-timeout: must be a number of seconds >= 0, got '-1'"),
        (("--shutdown-timeout", "nan"),
         "argument --shutdown-timeout: must be a number of seconds >= 0, got 'nan'"),
    ],
)
def test_every_numeric_option_names_itself_and_its_range(args: tuple[str, ...],
                                                         message: str) -> None:
    assert argument_error(*args) == f"Error: {message}"


def test_good_numbers_parse() -> None:
    options = parse("--batch-size", "500", "--max-jobs", "1", "--poll-interval", "0.05",
                    "--shutdown-timeout", "0")
    assert (options["batch_size"], options["max_jobs"], options["poll_interval"],
            options["shutdown_timeout"]) == (500, 1, 0.05, 0.0)


def test_the_concurrency_setting_has_the_same_bound() -> None:
    def problems(value: object) -> list[tuple[str, str]]:
        with override_settings(EDGEJOBS={"CONCURRENCY": value}):
            return [(p.id, p.msg) for p in check_settings()]

    assert problems(MAX_CONCURRENCY) == []
    assert problems(MAX_CONCURRENCY + 1) == [
        ("edgejobs.E005",
         f"EDGEJOBS['CONCURRENCY'] must be at most {MAX_CONCURRENCY}, got {MAX_CONCURRENCY + 1}")]
    assert problems(0) == [("edgejobs.E005",
                            "EDGEJOBS['CONCURRENCY'] must be a positive integer, got 0")]


# -- a worker that cannot start -----------------------------------------------------------


@pytest.fixture
def command_side_effects() -> Iterator[None]:
    """``runworker`` installs signal handlers and may add a log handler: undo both."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    logger = logging.getLogger("django_edgejobs")
    handlers, level = list(logger.handlers), logger.level
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    logger.handlers[:] = handlers
    logger.setLevel(level)


def edgejobs_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("edgejobs-")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("starts_allowed", [0, 3])
def test_a_worker_that_cannot_start_its_threads_deregisters_and_says_so(
        monkeypatch: pytest.MonkeyPatch, command_side_effects: None,
        starts_allowed: int) -> None:
    original_start = threading.Thread.start
    started = [0]

    def start(self: threading.Thread) -> None:
        if self.name.startswith("edgejobs-"):
            if started[0] >= starts_allowed:
                raise RuntimeError("can't start new thread")
            started[0] += 1
        original_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(CommandError) as exc:
        call_command("runworker", "--concurrency", "8", "--worker-id", "cli-test:1",
                     "--no-scheduler")
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("worker cli-test:1 could not start: RuntimeError: can't start "
                              f"new thread (after {starts_allowed} of its threads started)")
    assert "--concurrency" in message and "marked stopped" in message
    assert isinstance(exc.value.__cause__, RuntimeError)  # shown with --traceback

    row = WorkerRow.objects.get(id="cli-test:1")
    assert row.stopped_at is not None
    stats = queue_stats()
    assert (stats["workers_alive"], stats["workers"]) == (0, [])
    out = io.StringIO()
    call_command("edgejobs", "stats", stdout=out)
    assert "Workers alive: 0" in out.getvalue()
    assert "cli-test:1" not in out.getvalue()
    # The threads it did start were told to stop.
    wait_for(lambda: not edgejobs_threads(), timeout=10, message="the started threads exit")


# -- DEBUG --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", [True, False])
def test_a_worker_under_debug_warns_that_django_keeps_its_queries(
        command_side_effects: None, caplog: pytest.LogCaptureFixture, debug: bool) -> None:
    """Django logs every query of every connection under DEBUG (9,000 each): the soak's
    workers grew 22 MiB (PostgreSQL) to 50 MiB (SQLite) that way. runworker says so at start,
    once."""
    with override_settings(DEBUG=debug), caplog.at_level(logging.WARNING,
                                                         "django_edgejobs.worker"):
        call_command("runworker", "--burst", "--concurrency", "3")
    warnings = [r.getMessage() for r in caplog.records if "settings.DEBUG" in r.getMessage()]
    if debug:
        assert warnings == ["settings.DEBUG is on: Django keeps the last 9000 queries of each "
                            "database connection in memory, and this process uses up to 9; "
                            "its memory grows by tens of MB before it levels off. Run workers "
                            "with DEBUG = False."]
    else:
        assert warnings == []


# -- help text and docs -------------------------------------------------------------------


def help_text() -> str:
    return Command().create_parser("manage.py", "runworker").format_help()


def test_batch_size_help_describes_the_adaptive_default() -> None:
    text = " ".join(help_text().split())
    assert "Default: the concurrency" not in text
    assert "adaptive" in text and "50" in text


def test_concurrency_help_states_the_range() -> None:
    assert f"1-{MAX_CONCURRENCY}" in " ".join(help_text().split())


USAGE_OPTION = re.compile(r"\[(-{1,2}[a-z][a-z0-9-]*)(?: ([A-Z_]+))?\]")


def usage_options(usage: str) -> list[tuple[str, str | None]]:
    return [(name, metavar or None) for name, metavar in USAGE_OPTION.findall(usage)]


def help_usage_options() -> list[tuple[str, str | None]]:
    """The ``[--option METAVAR]`` items of ``runworker --help``'s usage, without the options
    every Django command has."""
    usage = help_text().split("\n\n", 1)[0]
    common = BaseCommand().create_parser("manage.py", "x").format_help().split("\n\n", 1)[0]
    shared = set(usage_options(common))
    return [item for item in usage_options(usage) if item not in shared]


def docs_usage_options() -> list[tuple[str, str | None]]:
    text = RUNWORKER_MD.read_text(encoding="utf-8")
    block = re.search(r"```\n(python manage\.py runworker .*?)```", text, re.S)
    assert block, "no usage block in runworker.md"
    return usage_options(block.group(1))


def test_docs_usage_line_matches_runworker_help() -> None:
    in_help = help_usage_options()
    assert ("--scheduler-only", None) in in_help  # guards the scan
    assert ("--concurrency", "N") in in_help
    assert docs_usage_options() == in_help


def test_docs_flag_table_has_a_row_per_option() -> None:
    text = RUNWORKER_MD.read_text(encoding="utf-8")
    flags = re.search(r"^## Flags\n(.*?)^## ", text, re.S | re.M)
    assert flags, "no Flags section in runworker.md"
    rows = re.findall(r"^\| `(--[a-z-]+)(?: ([A-Z_]+))?`", flags.group(1), re.M)
    assert [(name, metavar or None) for name, metavar in rows] == help_usage_options()


def test_the_docs_state_the_concurrency_bound() -> None:
    runworker_row = re.search(r"^\| `--concurrency N`.*$", RUNWORKER_MD.read_text("utf-8"), re.M)
    settings_md = (ROOT / "docs" / "reference" / "settings.md").read_text("utf-8")
    settings_row = re.search(r"^\| `CONCURRENCY` \| `4` \|.*$", settings_md, re.M)
    assert runworker_row and f"N <= {MAX_CONCURRENCY}" in runworker_row.group(0)
    assert settings_row and f"from 1 to {MAX_CONCURRENCY}" in settings_row.group(0)


# -- job types ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), [
    (("--type", "t.nowhere"), "--type: no handler is registered for job type(s) 't.nowhere' "
                              "in this process"),
    (("--type", ""), "--type: job type must be a non-empty string, got ''"),
    (("--exclude-type", "x" * 201), "--exclude-type: job type is longer than"),
    (("--type", "t.known", "--exclude-type", "t.known"),
     "job type(s) 't.known' given to both --type and --exclude-type"),
])
def test_a_bad_job_type_option_is_named_before_the_worker_starts(register, args, message):
    register("t.known", lambda payload, ctx: None)
    with pytest.raises(CommandError) as exc:
        call_command("runworker", "--burst", *args)
    assert str(exc.value).startswith(message)
    assert not WorkerRow.objects.exists()


def test_type_options_repeat() -> None:
    options = parse("--type", "a", "-t", "b", "--exclude-type", "c", "--exclude-type", "d")
    assert (options["types"], options["exclude_types"]) == (["a", "b"], ["c", "d"])
