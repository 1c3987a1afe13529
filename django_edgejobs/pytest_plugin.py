"""pytest fixtures for projects that use django-edgejobs (with pytest-django).

Installed with the package as the ``pytest11`` entry point ``edgejobs``, so pytest loads it by
itself; from a source checkout that is not installed, load it with
``-p django_edgejobs.pytest_plugin``.

- ``edgejobs_run``: :func:`django_edgejobs.testing.run_jobs` (``edgejobs_run(queue=None)``
  runs every due job now, in the test's transaction, and returns how many ran).
- ``edgejobs_enqueued``: a :class:`django_edgejobs.testing.CapturedJobs` made when the test
  starts: ``edgejobs_enqueued()`` lists the jobs written since, ``edgejobs_enqueued("type")``
  or ``edgejobs_enqueued(task=my_task)`` those of one type or Task.

Both use the database, so they request pytest-django's ``db`` fixture (a test marked
``django_db(transaction=True)`` keeps its transactional database).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import CapturedJobs


@pytest.fixture
def edgejobs_run(db: None) -> Callable[..., int]:
    """Run every due job now, in this test's transaction: ``edgejobs_run(queue=None) -> int``."""
    # Imported when a fixture is used: pytest loads this plugin at start-up, before
    # pytest-django has configured Django, and in projects that never use these fixtures.
    from .testing import run_jobs

    return run_jobs


@pytest.fixture
def edgejobs_enqueued(db: None) -> CapturedJobs:
    """The jobs written during this test: ``edgejobs_enqueued(type=None, queue=, task=)``."""
    from .testing import CapturedJobs

    return CapturedJobs()
