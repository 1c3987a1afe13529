"""Job types and their registry (held by the app config, not a module global). The ``@job``
decorator that fills it is ``handlers.py``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from .exceptions import UnknownJobType

if TYPE_CHECKING:
    from .services.schemas import PayloadSchema

#: Options of ``@job`` that become per-job defaults.
JOB_OPTIONS = (
    "queue",
    "priority",
    "max_attempts",
    "retry_delay",
    "retry_backoff",
    "retry_multiplier",
    "retry_delay_max",
    "timeout",
)

#: ``@job(on_invalid=...)`` / ``enqueue(on_invalid=...)``: a payload the schema refuses raises
#: ``InvalidPayload`` (nothing written), is written straight to ``failed`` with the validation
#: error (a dead letter), or is dropped with a warning.
ON_INVALID = ("raise", "fail", "discard")


@dataclass
class JobType:
    """A registered handler and the defaults for jobs of its type."""

    name: str
    func: Callable[..., Any]
    queue: str = "default"
    priority: int = 0
    max_attempts: int | None = None
    retry_delay: float | None = None
    #: True, False or a mode: "fixed", "linear", "exponential" (``retry.py``).
    retry_backoff: bool | str | None = None
    retry_multiplier: float | None = None
    retry_delay_max: float | None = None
    timeout: float | None = None
    force_kill: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``@job(schema=...)``: a TypedDict, a dataclass or a pydantic model (or None).
    schema: Any = None
    #: Flow control (``services.limits.Limits``), or None: no limit.
    limits: Any = None
    #: What enqueue does with a payload the schema refuses: "raise", "fail" or "discard".
    on_invalid: str = "raise"
    payload_schema: PayloadSchema | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.schema is not None:
            # Imported when needed: the registry is imported with the package's public face
            # (``job``) and by apps.py while the app registry loads, which load no services.
            from .services.schemas import compile_schema

            self.payload_schema = compile_schema(self.schema, where=f"@job({self.name!r})")
        if self.on_invalid not in ON_INVALID:
            raise ImproperlyConfigured(
                f"@job({self.name!r}): on_invalid must be one of "
                f"{', '.join(map(repr, ON_INVALID))}, got {self.on_invalid!r}")
        if self.on_invalid != "raise" and self.payload_schema is None:
            raise ImproperlyConfigured(
                f"@job({self.name!r}): on_invalid={self.on_invalid!r} needs a schema: it says "
                "what enqueue does with a payload the schema refuses")

    def load_payload(self, data: Any) -> Any:
        """What the handler receives for a stored payload (checked against the schema)."""
        if self.payload_schema is None:
            return data
        return self.payload_schema.load(data, job_type=self.name)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    @property
    def origin(self) -> str:
        return f"{getattr(self.func, '__module__', '?')}.{getattr(self.func, '__qualname__', '?')}"

    @property
    def location(self) -> tuple[str, int]:
        """Where the handler is defined. Re-importing its module (autoreload) registers from
        the same place; a copy-pasted handler of the same name does not."""
        code = getattr(self.func, "__code__", None)
        return self.origin, code.co_firstlineno if code is not None else 0

    def defaults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in JOB_OPTIONS}


#: Supplies the handler of a type that no ``@job`` registered, or returns None; may raise
#: UnknownJobType saying why it cannot.
Resolver = Callable[[str], JobType | None]


class Registry:
    """Job types by name. One instance lives on the ``django_edgejobs`` app config."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}
        self._resolvers: dict[str, Resolver] = {}

    def register(self, job_type: JobType) -> None:
        existing = self._types.get(job_type.name)
        if existing is not None and existing.location != job_type.location:
            old, new = existing.origin, job_type.origin
            if old == new:  # same name, another definition: say which lines
                old, new = (f"{old} (line {existing.location[1]})",
                            f"{new} (line {job_type.location[1]})")
            raise ImproperlyConfigured(
                f"job type {job_type.name!r} is already registered by {old}; "
                f"{new} cannot register it again"
            )
        self._types[job_type.name] = job_type

    def unregister(self, name: str) -> None:
        self._types.pop(name, None)

    def add_resolver(self, prefix: str, resolve: Resolver) -> None:
        """Let ``resolve(name)`` supply the handlers of the types starting with ``prefix`` that
        no ``@job`` registered. The django.tasks backend uses it for ``task:<module path>``:
        the handler of such a job is the Task itself, found by import when a job of it runs."""
        self._resolvers[prefix] = resolve

    def _resolve(self, name: str) -> JobType | None:
        for prefix, resolve in self._resolvers.items():
            if name.startswith(prefix):
                return resolve(name)
        return None

    def get(self, name: str) -> JobType | None:
        found = self._types.get(name)
        if found is None and self._resolvers:
            try:
                found = self._resolve(name)
            except UnknownJobType:
                return None
        return found

    def require(self, name: object) -> JobType:
        if not isinstance(name, str) or not name:
            raise UnknownJobType(f"job type must be a non-empty string, got {name!r}")
        found = self._types.get(name) or self._resolve(name)  # a resolver says why it cannot
        if found is None:
            close = difflib.get_close_matches(name, list(self._types), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownJobType(
                f"no handler is registered for job type {name!r}{hint} "
                "(handlers are registered with @job in an installed app's jobs.py)"
            )
        return found

    def names(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[JobType]:
        return iter(list(self._types.values()))

    @contextmanager
    def temporary(self, *job_types: JobType) -> Iterator[None]:
        """Register job types for the duration of a block (for tests)."""
        saved = dict(self._types)
        try:
            for jt in job_types:
                self._types[jt.name] = jt
            yield
        finally:
            self._types = saved


def get_registry() -> Registry:
    from django.apps import apps

    try:
        config = apps.get_app_config("django_edgejobs")
    except LookupError as exc:  # pragma: no cover - misconfiguration
        raise ImproperlyConfigured(
            "django_edgejobs is not in INSTALLED_APPS; add it before registering jobs"
        ) from exc
    return config.registry  # type: ignore[attr-defined]
