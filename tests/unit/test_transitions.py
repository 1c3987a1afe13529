"""The transition table is the one home of the job life cycle: the docs are rendered from it,
and every outcome kind and status it names exists."""

from __future__ import annotations

import re
from pathlib import Path

from django_edgejobs import signals
from django_edgejobs.models import JobEvent, JobStatus
from django_edgejobs.models import transitions as t

DOC = Path(__file__).resolve().parents[2] / "docs" / "explanation" / "states.md"


def test_the_docs_table_is_the_codes_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- transitions:begin -->\n(.*?)<!-- transitions:end -->", text, re.S)
    assert found, "docs/explanation/states.md lost its transitions markers"
    assert found.group(1) == t.render_table(), (
        "docs/explanation/states.md is out of date: paste render_table()'s output")


def test_every_transition_names_real_states_events_and_signals() -> None:
    statuses = set(JobStatus.values)
    for transition in t.TRANSITIONS:
        assert set(transition.sources) <= statuses and transition.target in statuses
        assert transition.event in JobEvent.Kind.values, transition
        if transition.signal:
            assert hasattr(signals, transition.signal), transition
    assert len({x.name for x in t.TRANSITIONS}) == len(t.TRANSITIONS)


def test_every_attempt_outcome_is_a_fenced_transition_from_processing() -> None:
    assert set(t.OUTCOMES) == {"completed", "retry", "failed", "released", "waiting"}
    for transition in t.OUTCOMES.values():
        assert transition.fenced and transition.sources == (JobStatus.PROCESSING,)


def test_only_a_manual_retry_leaves_the_finished_states() -> None:
    """... and the revival it brings: the dependents a failed job's failure cancelled wait
    for it again when it is retried (``store/dependencies.py``)."""
    leaving_finished = {x.name for x in t.TRANSITIONS
                        if set(x.sources) & {JobStatus.COMPLETED, JobStatus.FAILED,
                                             JobStatus.CANCELLED}}
    assert leaving_finished == {"manual retry", "revive"}
    assert t.REVIVE.sources == (JobStatus.CANCELLED,) and "retry_job" in t.REVIVE.by
