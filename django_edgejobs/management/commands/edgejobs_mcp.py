"""``manage.py edgejobs_mcp --user USERNAME [--read-only]``: the ops MCP server over stdio
(``django_edgejobs/mcp_server.py``). Configure it in an MCP client as a command; see
docs/howto/mcp.md."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = ("Serve the Model Context Protocol over stdio: tools to read and operate the job "
            "queue, as one Django user, with that user's permissions.")
    requires_migrations_checks = False  # stdout is the protocol: no warning may go there

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, metavar="USERNAME",
                            help="the Django user every tool call runs as (permissions "
                                 "checked at each call, as in the admin)")
        parser.add_argument("--read-only", action="store_true",
                            help="offer only the tools that read (no retry, cancel, pause, "
                                 "trigger or token completion)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            import mcp  # noqa: F401
        except ImportError:
            raise CommandError("the MCP server needs the official mcp SDK: "
                               "pip install 'django-edgejobs[mcp]'") from None
        from ...mcp_server import Refused, build_server

        try:
            server = build_server(options["user"], read_only=options["read_only"])
        except Refused as exc:
            raise CommandError(f"edgejobs_mcp: {exc}") from None
        server.run("stdio")
