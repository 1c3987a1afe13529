"""The job page's dependencies: the job's direct dependencies on the left, the job in the
middle, its direct dependents on the right, as a small graph drawn on the server (inline SVG,
no script) and as a table of the same jobs (what a screen reader or a text browser reads).

Here only the layout is computed; ``job/dependencies.html`` writes the SVG and the table, so
every text in them (job types are the users') is escaped by the template engine. Colours and
shapes come from this module, never from data.

Queries: one aggregate for every job page (edges either way, and those still unresolved),
then, only when there are edges, one per side for the jobs shown (each side capped).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q
from django.urls import reverse

from ..models import Job, JobDependency
from ..models.job import DEPENDENCIES, JobStatus

#: Jobs drawn on each side; the rest are counted ("and N more").
CAP = 12
NODE_W, NODE_H, ROW_GAP, COL_GAP, PAD = 220, 40, 10, 90, 6
#: Characters of a type a node shows (the whole type in its tooltip and in the table).
TYPE_CHARS = 28
#: Node fills: the badges' colours (``admin.css``, ``.ej-<status>``). An SVG shape takes
#: ``fill``, not the badges' ``background``, and an inline ``style`` would need the page's
#: CSP to allow it; presentation attributes need nothing.
FILL: dict[str, str] = {"pending": "#6c757d", "waiting": "#8e44ad", "processing": "#2b7bb9",
                        "completed": "#3b8a3e", "failed": "#c0392b", "cancelled": "#a0a0a0"}
DARK_TEXT = {"cancelled"}
EDGE = "#888"
CANCELLING_EDGE = "#c0392b"


@dataclass(frozen=True)
class Node:
    """A job of the graph. ``edge_*``: the edge that links it to the page's job (None for
    the page's job itself)."""

    id: uuid.UUID
    type: str
    status: str
    x: int
    y: int
    url: str | None
    edge_on_failure: str | None = None
    edge_resolved: bool = False
    edge_cancelled: bool = False

    @property
    def short_type(self) -> str:
        return self.type if len(self.type) <= TYPE_CHARS else self.type[:TYPE_CHARS - 1] + "…"

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def fill(self) -> str:
        return FILL.get(self.status, "#777")

    @property
    def text_fill(self) -> str:
        return "#222" if self.status in DARK_TEXT else "#fff"

    @property
    def text_x(self) -> int:
        return self.x + 8

    @property
    def type_y(self) -> int:
        return self.y + 17

    @property
    def status_y(self) -> int:
        return self.y + 32


@dataclass(frozen=True)
class Edge:
    """An arrow from a dependency to its dependent. ``run``: the dependent runs even if this
    dependency fails (drawn dashed)."""

    x1: int
    y1: int
    x2: int
    y2: int
    run: bool
    cancelled: bool
    title: str

    @property
    def stroke(self) -> str:
        return CANCELLING_EDGE if self.cancelled else EDGE


@dataclass(frozen=True)
class More:
    """"and N more" under a column."""

    count: int
    x: int
    y: int


@dataclass
class DependencyGraph:
    job: Node
    dependencies: list[Node]
    dependents: list[Node]
    more_dependencies: int
    more_dependents: int
    width: int
    height: int
    edges: list[Edge] = field(default_factory=list)
    more: list[More] = field(default_factory=list)
    node_w: int = NODE_W
    node_h: int = NODE_H
    cap: int = CAP

    @property
    def nodes(self) -> list[Node]:
        return [*self.dependencies, self.job, *self.dependents]

    @property
    def has_run_edges(self) -> bool:
        return any(e.run for e in self.edges)


@dataclass(frozen=True)
class Dependencies:
    """What the job page shows of the job's dependencies: the graph (None: no edge either
    way) and, for a job waiting for its dependencies, how many it still waits for."""

    graph: DependencyGraph | None
    waiting_for: int | None


def _url(job_id: uuid.UUID) -> str:
    return reverse("admin:django_edgejobs_job_change", args=[job_id])


def _column(rows: list[tuple], x: int, top: int) -> list[Node]:
    return [Node(id=r[0], type=r[1], status=r[2], x=x, y=top + i * (NODE_H + ROW_GAP),
                 url=_url(r[0]), edge_on_failure=r[3], edge_resolved=r[4],
                 edge_cancelled=r[5]) for i, r in enumerate(rows)]


def _edge_title(dependency: Node, dependent: Node, edge: Node) -> str:
    state = ("cancelled the dependent" if edge.edge_cancelled
             else "resolved" if edge.edge_resolved else "not resolved yet")
    runs = "runs even if it fails" if edge.edge_on_failure == "run" else "cancelled if it fails"
    return (f"{dependent.short_type} ({dependent.short_id}) after {dependency.short_type} "
            f"({dependency.short_id}): {runs}; {state}")


def layout(job: Job, dependencies: list[tuple], dependents: list[tuple],
           more_dependencies: int = 0, more_dependents: int = 0) -> DependencyGraph:
    """Place the nodes: ``dependencies`` and ``dependents`` are rows (id, type, status,
    on_failure, resolved, cancelled), each side at most ``CAP``."""
    rows = max(len(dependencies) + (1 if more_dependencies else 0),
               len(dependents) + (1 if more_dependents else 0), 1)
    height = PAD * 2 + rows * (NODE_H + ROW_GAP) - ROW_GAP
    width = PAD * 2 + 3 * NODE_W + 2 * COL_GAP
    left, middle, right = PAD, PAD + NODE_W + COL_GAP, PAD + 2 * (NODE_W + COL_GAP)
    center = Node(id=job.id, type=job.type, status=job.status, x=middle,
                  y=(height - NODE_H) // 2, url=None)
    graph = DependencyGraph(
        job=center, dependencies=_column(dependencies, left, PAD),
        dependents=_column(dependents, right, PAD), more_dependencies=more_dependencies,
        more_dependents=more_dependents, width=width, height=height)
    mid_y = center.y + NODE_H // 2
    for node in graph.dependencies:
        graph.edges.append(Edge(
            node.x + NODE_W, node.y + NODE_H // 2, middle - 2, mid_y,
            run=node.edge_on_failure == "run", cancelled=node.edge_cancelled,
            title=_edge_title(node, center, node)))
    for node in graph.dependents:
        graph.edges.append(Edge(
            middle + NODE_W, mid_y, node.x - 2, node.y + NODE_H // 2,
            run=node.edge_on_failure == "run", cancelled=node.edge_cancelled,
            title=_edge_title(center, node, node)))
    for column, count, x in ((graph.dependencies, more_dependencies, left),
                             (graph.dependents, more_dependents, right)):
        if count:
            graph.more.append(More(count, x + 8,
                                   PAD + len(column) * (NODE_H + ROW_GAP) + NODE_H // 2))
    return graph


def dependencies_of(job: Job) -> Dependencies:
    """The job page's dependencies section (see the module's docstring for its queries)."""
    counts: dict[str, Any] = JobDependency.objects.filter(
        Q(job_id=job.id) | Q(depends_on_id=job.id)).aggregate(
        dependencies=Count("id", filter=Q(job_id=job.id)),
        dependents=Count("id", filter=Q(depends_on_id=job.id)),
        unresolved=Count("id", filter=Q(job_id=job.id, resolved=False)))
    waiting_for = (counts["unresolved"] if job.status == JobStatus.WAITING
                   and job.wait_token == DEPENDENCIES else None)
    if not counts["dependencies"] and not counts["dependents"]:
        return Dependencies(None, waiting_for)
    edge = ("on_failure", "resolved", "cancelled")
    dependencies = list(
        JobDependency.objects.filter(job_id=job.id).order_by("id").values_list(
            "depends_on_id", "depends_on__type", "depends_on__status", *edge)[:CAP]
    ) if counts["dependencies"] else []
    dependents = list(
        JobDependency.objects.filter(depends_on_id=job.id).order_by("id").values_list(
            "job_id", "job__type", "job__status", *edge)[:CAP]
    ) if counts["dependents"] else []
    graph = layout(job, dependencies, dependents,
                   more_dependencies=max(0, counts["dependencies"] - len(dependencies)),
                   more_dependents=max(0, counts["dependents"] - len(dependents)))
    return Dependencies(graph, waiting_for)
