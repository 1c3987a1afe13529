"""The portable store: ``Store``, the domain verbs over the job tables in Django's ORM, put
together from one mixin per concept. Vendors subclass it and override the hot paths
(``postgres.py``, ``sqlite.py``).

- ``core.py``: the connection, ``retrying``, ``db_now``, events, ``notify``; ``Finish``,
  ``append_error``, ``is_transient``
- ``enqueue.py``: ``insert``; ``claim.py``: ``claim``; ``limits.py``: ``claim_limited``
  (jobs with a concurrency or rate limit), ``mark_limited``
- ``outcomes.py``: ``finish``, ``complete``/``fail``/``release``, ``held_leases``,
  ``set_progress``
- ``durable.py``: steps, wait tokens, resumes
- ``dependencies.py``: a job's dependencies and a batch's callbacks (``link``, ``settle``,
  ``revive``)
- ``maintenance.py``: ``reclaim``, ``expire_jobs``, ``prune_jobs``, ``prune_events``
- ``workers.py``: the worker registry; ``reads.py``: ``tag_condition``, the histogram
- ``sql_portable.py``, ``sql_postgres.py``, ``sql_sqlite.py``: every raw statement, named
"""

from __future__ import annotations

from .core import TRANSIENT_MARKERS, Finish, StoreCore, append_error, is_transient
from .dependencies import DependencyVerbs
from .durable import DurableVerbs
from .enqueue import EnqueueVerbs
from .limits import LimitVerbs
from .maintenance import MaintenanceVerbs
from .outcomes import OutcomeVerbs
from .reads import ReadVerbs
from .workers import WorkerVerbs

__all__ = ["TRANSIENT_MARKERS", "Finish", "Store", "StoreCore", "append_error", "is_transient"]


class Store(EnqueueVerbs, LimitVerbs, OutcomeVerbs, DurableVerbs, DependencyVerbs,
            MaintenanceVerbs, WorkerVerbs, ReadVerbs):
    """Domain verbs over the job tables on one database alias."""
