"""Run a test's helper in fresh processes (the ``spawn`` start method) with Django set up as
in the test process, on the same (test) database.

``fork`` from pytest copies a multi-threaded process (deadlock-prone, and deprecated for that
reason); a spawned child starts clean, so it must set Django up itself. This module imports
nothing of Django at import time: the child imports it before Django is configured.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from typing import Any


def processes(target: str, args: tuple[Any, ...], count: int) -> list[Any]:
    """``count`` unstarted processes that run ``target`` ("module:function") with ``args``."""
    from django.conf import settings
    from django.db import connection

    ctx = multiprocessing.get_context("spawn")
    setup = (settings.SETTINGS_MODULE, connection.settings_dict["NAME"])
    return [ctx.Process(target=_child, args=(target, args, *setup)) for _ in range(count)]


def _child(target: str, args: tuple[Any, ...], settings_module: str, db_name: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = db_name  # the test database, not the real one
    import django

    django.setup()
    module, name = target.split(":")
    getattr(importlib.import_module(module), name)(*args)
