"""Row 15 of issue 9: the admin under abuse.

Every admin URL of the app (jobs and their detail, history and delete pages, job events, wait
tokens, cron schedules with their form, workers, the edge cache page, the dashboard, the app
index) is requested through the real admin, on the database the suite runs on, by the wrong
people and with hostile input:

- anonymous, inactive and non-staff users, with every method: the login page;
- staff without permissions: 403 everywhere (the admin index says there is nothing to see);
- staff who may only view: the pages, but every action name (real or forged) POSTed to every
  list and detail page, and every add/change/delete form and the cache page: 403;
- each action, posted by a user with every permission but the one it needs: 403; by a user
  with only that one, CSRF token included: done, with one ``LogEntry`` per object changed;
- every state-changing POST without a CSRF token: 403;
- forged action names: 403 for an action the admin knows but the user may not run, the list
  again ("No action selected") for names no admin has; a real button posted for a job in a
  state it does not apply to changes nothing and logs nothing;
- ``<script>`` and attribute-breaking text in every displayed field and in every echoed
  parameter: each is shown, escaped, somewhere; none is ever sent unescaped;
- ``?q=' OR 1=1--`` and other SQL and wildcards in every search box and filter: exactly the
  literal matches (none), never a server error; a NUL character in a filter, an object id or a
  selected id, or a selected id that cannot be a row's: 400 or "does not exist", not a 500;
- URL lookups outside the list filters (``?payload__api_key__startswith=``): 400;
- a bulk retry of the whole filtered list (10,000 rows; 300 at the fast scale, where the cap
  is lowered to 250): a confirmation page first that changes nothing, at most ``MAX_ROWS``
  jobs per run with a message for the rest, one ``LogEntry`` per job retried;
- no GET, HEAD or OPTIONS request, whoever sends it and whatever it names, changes a row.

The figures go to docs/reliability.md (row 15).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_edgejobs import add_cron
from django_edgejobs.admin import actions as job_actions
from django_edgejobs.models import (
    CronSchedule,
    CronTick,
    Job,
    JobEvent,
    JobStatus,
    WaitToken,
    Worker,
)
from tests.acceptance.faults.conftest import scale

pytestmark = [pytest.mark.acceptance, pytest.mark.fault, pytest.mark.django_db]

ADMIN = "admin:django_edgejobs"
MODELS = ("job", "jobevent", "waittoken", "cronschedule", "worker")
VIEW = tuple(f"view_{m}" for m in MODELS)
CACHE_ALIAS = "edge15"

# -- hostile text -------------------------------------------------------------------------


def hostile(label: str) -> str:
    """Breaks out of an attribute and opens a script if the admin forgets to escape."""
    return f"\"'><script>x('{label}')</script>"


def hostile_pk(label: str) -> str:
    """The same without a slash, for primary keys that end up in admin URLs."""
    return f"\"'><img src=x onerror=x('{label}')>"


RAW = re.compile(r"<script>x\(|<img src=x onerror=x\(")


def escaped(label: str) -> tuple[str, str]:
    return (f"&lt;script&gt;x(&#x27;{label}&#x27;)",
            f"&lt;img src=x onerror=x(&#x27;{label}&#x27;)&gt;")


#: Every stored field the admin displays, and every request parameter it echoes.
STORED = ["jobtype", "jobqueue", "jobtag", "jobkey", "payload", "payloadkey", "result", "steps",
          "lasterror", "histerror", "traceback", "histat", "eventdata", "worker", "hostname",
          "workerqueue", "token", "tokentag", "tokenoutput", "cron", "cronpayload",
          "crontag", "cronqueue", "tickreason", "cachekey", "cachemeta"]
ECHOED = ["q", "prefix", "queueparam", "typeparam", "tagparam", "workerparam", "missingid"]

SQL = ["' OR 1=1--", "\" OR \"\"=\"", "1; DROP TABLE django_edgejobs_job;--",
       "' UNION SELECT password FROM auth_user--", "%", "_", "\\", "*", "tag:' OR 1=1--",
       "tag:%", ") OR (1=1", "a\x00b", "tag:\x00"]


# -- what happened ------------------------------------------------------------------------

@dataclass
class Tally:
    requests: int = 0
    refused: int = 0  # 302 to the login page, 400, 403, 405
    by_status: Counter = field(default_factory=Counter)
    unescaped: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    audit_rows: int = 0
    actions_done: int = 0
    get_requests: int = 0

    def check(self, response: Any, what: str) -> Any:
        """Count a response (the last one of a followed redirect chain), note whether it is
        a refusal, look for hostile text sent raw and for each field shown escaped."""
        self.requests += 1
        self.by_status[response.status_code] += 1
        if response.status_code in (400, 403, 405) or (
                response.status_code == 302 and "/login/" in response.get("Location", "")):
            self.refused += 1
        body = response.content.decode(errors="replace")
        found = RAW.search(body)
        if found:
            self.unescaped.append(f"{what}: {found.group(0)}")
        for label in (*STORED, *ECHOED):
            if label not in self.seen and any(e in body for e in escaped(label)):
                self.seen.add(label)
        return response


@pytest.fixture
def tally() -> Tally:
    return Tally()


def snapshot() -> dict[str, Any]:
    """Every row of the app's tables, the admin log and the users (sessions aside: a login
    writes one)."""
    tables: dict[str, Any] = {}
    for model in [*apps.get_app_config("django_edgejobs").get_models(), LogEntry, User]:
        tables[model._meta.db_table] = list(model.objects.order_by("pk").values_list())
    return tables


def changed_tables(before: dict[str, Any]) -> list[str]:
    after = snapshot()
    return [name for name in before if before[name] != after[name]]


# -- the world ----------------------------------------------------------------------------

@dataclass
class World:
    jobs: dict[str, Job]
    tokens: dict[str, WaitToken]
    schedules: dict[str, CronSchedule]
    worker: Worker
    bulk: int
    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)


def job_row(status: str, type_: str = "t.a", **fields: Any) -> Job:
    now = timezone.now()
    if status in ("completed", "failed", "cancelled"):
        fields.setdefault("started_at", now - timedelta(seconds=3))
        fields.setdefault("completed_at", now - timedelta(seconds=1))
    if status == "processing":
        fields.setdefault("started_at", now)
        fields.setdefault("lease_owner", "w-test")
        fields.setdefault("lease_token", uuid.uuid4())
    job = Job.objects.create(type=type_, status=status, **fields)
    JobEvent.objects.create(job_id=job.id, type="added", data={})
    return job


def build_world(register: Callable[..., Any], settings: Any) -> World:
    settings.CACHES = {**settings.CACHES, CACHE_ALIAS: {
        "BACKEND": "django_edgejobs.cache.DatabaseEdgeCache", "LOCATION": "abuse15"}}
    register("t.a", lambda payload, ctx: None)
    register("t.bulk", lambda payload, ctx: None)
    register(hostile("jobtype"), lambda payload, ctx: None)
    now = timezone.now()
    worker = Worker.objects.create(id=hostile_pk("worker"), hostname=hostile("hostname"), pid=1,
                                   concurrency=4, queues=[hostile("workerqueue")])
    cron = add_cron(f"c{hostile('cron')}", "0 2 * * *", hostile("jobtype"),
                    {"p": hostile("cronpayload")})
    CronSchedule.objects.filter(pk=cron.pk).update(tags=[hostile("crontag")],
                                                   queue=hostile("cronqueue"))
    CronTick.objects.create(schedule=cron, tick_at=now - timedelta(days=1), outcome="error",
                            reason=hostile("tickreason"))
    text = {"jobtype": hostile("jobtype"), "queue": hostile("jobqueue")}
    jobs = {
        "hostile": job_row(
            "failed", text["jobtype"], queue=text["queue"],
            tags=[hostile("jobtag"), f"cron:{cron.name}"], idempotency_key=hostile("jobkey"),
            payload={"html": hostile("payload"), hostile("payloadkey"): 1, "api_key": "s3cret"},
            result={"r": hostile("result")}, steps={"s": hostile("steps")},
            last_error=f"ValueError: {hostile('lasterror')}",
            error_history=[{"attempt": 1, "error": hostile("histerror"),
                            "traceback": f"Traceback\n  {hostile('traceback')}",
                            "at": hostile("histat")}]),
        "running": job_row("processing", text["jobtype"], queue=text["queue"],
                           lease_owner=worker.id),
        "waiting": job_row("waiting", text["jobtype"], wait_token=hostile_pk("token"),
                           run_at=now + timedelta(days=1)),
        "completed": job_row("completed", result={"ok": 1}),
        "pending_due": job_row("pending", run_at=now - timedelta(minutes=5)),
        "expired": job_row("pending", run_at=now - timedelta(minutes=5),
                           expires_at=now - timedelta(minutes=1)),
        # The targets of the actions that succeed (one each), and of the inapplicable ones.
        "retry_list": job_row("failed", text["jobtype"]),
        "retry_detail": job_row("cancelled"),
        "cancel_list": job_row("pending", run_at=now + timedelta(hours=1)),
        "cancel_detail": job_row("waiting", run_at=now + timedelta(hours=1)),
        "run_list": job_row("pending", run_at=now + timedelta(hours=2)),
        "run_detail": job_row("pending", run_at=now + timedelta(hours=3)),
        "delete_list": job_row("failed"),
        "delete_view": job_row("completed"),
    }
    JobEvent.objects.create(job_id=jobs["hostile"].id, type="failed",
                            data={"e": hostile("eventdata"), "token": "s3cret"})
    tokens = {
        "hostile": WaitToken.objects.create(id=hostile_pk("token"), job=jobs["waiting"],
                                            tags=[hostile("tokentag")],
                                            output={"o": hostile("tokenoutput")}),
        "delete_list": WaitToken.objects.create(job=jobs["pending_due"]),
        "delete_view": WaitToken.objects.create(job=jobs["pending_due"]),
    }
    schedules = {
        "hostile": cron,
        "pause": add_cron("s-pause", "0 3 * * *", "t.a"),
        "resume": add_cron("s-resume", "0 4 * * *", "t.a", enabled=False),
        "trigger": add_cron("s-trigger", "0 5 * * *", "t.a"),
        "edit": add_cron("s-edit", "0 6 * * *", "t.a"),
        "delete_list": add_cron("s-delete-list", "0 7 * * *", "t.a"),
        "delete_view": add_cron("s-delete-view", "0 8 * * *", "t.a"),
    }
    edge = caches[CACHE_ALIAS]
    edge.set(hostile("cachekey"), 1, metadata={"m": hostile("cachemeta"), "secret": "s3cret"})
    edge.set("plain:delete-me", 2)
    n = scale(300, job_actions.MAX_ROWS + 50)
    Job.objects.bulk_create(
        [Job(type="t.bulk", status="failed", attempts=3, max_attempts=3, tags=["bulk15"],
             created_at=now - timedelta(seconds=i), started_at=now, completed_at=now)
         for i in range(n)], batch_size=1000)
    return World(jobs, tokens, schedules, worker, n)


def login(user: User | None, csrf: bool = True) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def make_user(name: str, *codenames: str, staff: bool = True, superuser: bool = False,
              active: bool = True) -> User:
    user = User.objects.create_user(name, password=None, is_staff=staff,
                                    is_superuser=superuser, is_active=active)
    if codenames:
        perms = Permission.objects.filter(content_type__app_label="django_edgejobs",
                                          codename__in=codenames)
        assert perms.count() == len(set(codenames)), codenames
        user.user_permissions.set(perms)
    return user


def all_codenames() -> set[str]:
    return set(Permission.objects.filter(content_type__app_label="django_edgejobs")
               .values_list("codename", flat=True))


# -- the URLs -----------------------------------------------------------------------------

def url(name: str, *args: Any) -> str:
    return reverse(f"{ADMIN}_{name}", args=[quote(str(a)) for a in args])


def changelist(model: str, **params: Any) -> str:
    base = url(f"{model}_changelist")
    return f"{base}?{urlencode(params)}" if params else base


@dataclass(frozen=True)
class Page:
    url: str
    ok: int = 200  # what a superuser gets
    viewer: int | None = None  # what a view-only user gets, when it differs


def pages(w: World) -> list[Page]:
    """Every admin URL of the app that answers GET, with hostile parameters too (for the
    objects that still exist)."""
    jobs = {k: j for k, j in w.jobs.items() if Job.objects.filter(pk=j.pk).exists()}
    tokens = {k: t for k, t in w.tokens.items() if WaitToken.objects.filter(pk=t.pk).exists()}
    schedules = {k: s for k, s in w.schedules.items()
                 if CronSchedule.objects.filter(pk=s.pk).exists()}
    hostile_job = jobs["hostile"]
    created = timezone.localtime(hostile_job.created_at)
    out = [
        Page(reverse("admin:index")),
        Page(reverse("admin:app_list", args=["django_edgejobs"])),
        Page(url("dashboard")), Page(url("dashboard") + "?refresh=10"),
        Page(url("dashboard") + "?" + urlencode({"refresh": hostile("refresh")})),
        Page(url("cache"), viewer=403),
        Page(url("cache") + "?" + urlencode({"cache": CACHE_ALIAS, "prefix": '"'}),
             viewer=403),
        Page(url("cache") + "?" + urlencode({"cache": hostile("cacheparam"),
                                             "prefix": hostile("prefix")}), viewer=403),
        Page(url("cacheentry_changelist"), viewer=403),
    ]
    for model in MODELS:
        out += [Page(changelist(model)), Page(changelist(model, q=hostile("q"))),
                Page(url(f"{model}_add"), ok=200 if model == "cronschedule" else 403,
                     viewer=403)]
    out += [Page(changelist("job", **params)) for params in (
        {"status": "failed"}, {"attention": "stuck"}, {"attention": "overdue"},
        {"attention": "due"}, {"finished": "1h"}, {"finished": "24h"},
        {"queue": hostile("queueparam")}, {"type": hostile("typeparam")},
        {"tag": hostile("tagparam")}, {"worker": hostile("workerparam")},
        {"worker": w.worker.id}, {"tag": f"cron:{schedules['hostile'].name}"},
        {"queue": hostile("jobqueue")}, {"q": hostile("jobtype")},
        {"q": f"tag:{hostile('jobtag')}"}, {"q": str(hostile_job.pk)}, {"o": "-3.2"},
        {"p": "2"}, {"created_at__year": created.year},
        {"created_at__year": created.year, "created_at__month": created.month},
        {"created_at__year": created.year, "created_at__month": created.month,
         "created_at__day": created.day})]
    out += [Page(changelist("jobevent", job_id=hostile_job.pk)),
            Page(changelist("waittoken", q=w.tokens["hostile"].pk)),
            Page(changelist("worker", state="alive")),
            Page(changelist("cronschedule", q="s-"))]
    for job in jobs.values():
        out += [Page(url("job_change", job.pk)), Page(url("job_history", job.pk)),
                Page(url("job_delete", job.pk),
                     ok=403 if job.status == JobStatus.PROCESSING else 200, viewer=403),
                Page(reverse(f"{ADMIN}_job_changelist") + quote(str(job.pk)) + "/", ok=302)]
    missing = url("job_change", hostile("missingid"))
    out += [Page(missing, ok=302, viewer=302),
            Page(url("job_change", uuid.uuid4()), ok=302, viewer=302)]
    event = JobEvent.objects.filter(job_id=hostile_job.pk, type="failed").get()
    out += [Page(url("jobevent_change", event.pk)), Page(url("jobevent_history", event.pk)),
            Page(url("jobevent_delete", event.pk), ok=403, viewer=403)]
    for token in tokens.values():
        out += [Page(url("waittoken_change", token.pk)),
                Page(url("waittoken_history", token.pk)),
                Page(url("waittoken_delete", token.pk), viewer=403)]
    for schedule in schedules.values():
        out += [Page(url("cronschedule_change", schedule.pk)),
                Page(url("cronschedule_history", schedule.pk)),
                Page(url("cronschedule_delete", schedule.pk), viewer=403)]
    out += [Page(url("worker_change", w.worker.pk)), Page(url("worker_history", w.worker.pk)),
            Page(url("worker_delete", w.worker.pk), ok=403, viewer=403)]
    return out


# -- the POSTs that change something ------------------------------------------------------

@dataclass
class Post:
    name: str
    url: str
    data: dict[str, Any]
    needs: tuple[str, ...]  # permission codenames
    flag: int  # the LogEntry's action flag
    done: Callable[[], bool]  # the change happened


def cron_form(**changes: Any) -> dict[str, Any]:
    data = {"name": "s-added", "cron": "0 2 * * *", "timezone": "UTC", "type": "t.a",
            "payload": "{}", "enabled": "on", "queue": "", "priority": "", "tags": "[]",
            "max_attempts": "", "retry_delay": "", "retry_backoff": "unknown",
            "retry_delay_max": "", "timeout": ""}
    return {**data, **changes}


def action(name: str, *pks: Any, **extra: Any) -> dict[str, Any]:
    return {"action": name, "index": "0", "_selected_action": [str(pk) for pk in pks],
            **extra}


def posts(w: World) -> list[Post]:
    """Every kind of state-changing POST the admin accepts, each on its own target."""
    j, t, s = w.jobs, w.tokens, w.schedules

    def status(key: str, wanted: str) -> Callable[[], bool]:
        return lambda: Job.objects.get(pk=j[key].pk).status == wanted

    def gone(model: Any, pk: Any) -> Callable[[], bool]:
        return lambda: not model.objects.filter(pk=pk).exists()

    def due_now(key: str) -> Callable[[], bool]:
        return lambda: Job.objects.get(pk=j[key].pk).run_at <= timezone.now()

    def enabled(key: str, wanted: bool) -> Callable[[], bool]:
        return lambda: CronSchedule.objects.get(pk=s[key].pk).enabled is wanted

    jobs = changelist("job")
    crons = changelist("cronschedule")
    return [
        Post("jobs: retry_selected", jobs, action("retry_selected", j["retry_list"].pk),
             ("retry_job",), CHANGE, status("retry_list", "pending")),
        Post("jobs: cancel_selected", jobs, action("cancel_selected", j["cancel_list"].pk),
             ("cancel_job",), CHANGE, status("cancel_list", "cancelled")),
        Post("jobs: run_now_selected", jobs, action("run_now_selected", j["run_list"].pk),
             ("change_job",), CHANGE, due_now("run_list")),
        Post("jobs: delete_selected_jobs", jobs,
             action("delete_selected_jobs", j["delete_list"].pk, confirm="yes"),
             ("delete_job",), DELETION, gone(Job, j["delete_list"].pk)),
        Post("job detail: retry", url("job_change", j["retry_detail"].pk), {"action": "retry"},
             ("retry_job",), CHANGE, status("retry_detail", "pending")),
        Post("job detail: cancel", url("job_change", j["cancel_detail"].pk),
             {"action": "cancel"}, ("cancel_job",), CHANGE, status("cancel_detail",
                                                                   "cancelled")),
        Post("job detail: run_now", url("job_change", j["run_detail"].pk),
             {"action": "run_now"}, ("change_job",), CHANGE, due_now("run_detail")),
        Post("job delete page", url("job_delete", j["delete_view"].pk), {"post": "yes"},
             ("delete_job",), DELETION, gone(Job, j["delete_view"].pk)),
        Post("schedules: pause_selected", crons, action("pause_selected", s["pause"].pk),
             ("change_cronschedule",), CHANGE, enabled("pause", False)),
        Post("schedules: resume_selected", crons, action("resume_selected", s["resume"].pk),
             ("change_cronschedule",), CHANGE, enabled("resume", True)),
        Post("schedules: run_now_selected", crons,
             action("run_now_selected", s["trigger"].pk), ("change_cronschedule",), CHANGE,
             lambda: any("cron:s-trigger" in (tags or []) for tags in
                         Job.objects.filter(type="t.a").values_list("tags", flat=True))),
        Post("schedules: delete_selected", crons,
             action("delete_selected", s["delete_list"].pk, post="yes"),
             ("delete_cronschedule",), DELETION, gone(CronSchedule, s["delete_list"].pk)),
        Post("schedule add form", url("cronschedule_add"), cron_form(),
             ("add_cronschedule",), ADDITION,
             lambda: CronSchedule.objects.filter(name="s-added").exists()),
        Post("schedule change form", url("cronschedule_change", s["edit"].pk),
             cron_form(name="s-edit", cron="30 3 * * *"), ("change_cronschedule",), CHANGE,
             lambda: CronSchedule.objects.get(pk=s["edit"].pk).cron == "30 3 * * *"),
        Post("schedule delete page", url("cronschedule_delete", s["delete_view"].pk),
             {"post": "yes"}, ("delete_cronschedule",), DELETION,
             gone(CronSchedule, s["delete_view"].pk)),
        Post("tokens: complete_selected", changelist("waittoken"),
             action("complete_selected", t["hostile"].pk, apply="1",
                    output='{"approved": true}'),
             ("change_waittoken",), CHANGE,
             lambda: WaitToken.objects.get(pk=t["hostile"].pk).status == "completed"),
        Post("tokens: delete_selected", changelist("waittoken"),
             action("delete_selected", t["delete_list"].pk, post="yes"),
             ("delete_waittoken",), DELETION, gone(WaitToken, t["delete_list"].pk)),
        Post("token delete page", url("waittoken_delete", t["delete_view"].pk),
             {"post": "yes"}, ("delete_waittoken",), DELETION,
             gone(WaitToken, t["delete_view"].pk)),
        Post("cache page: delete keys", url("cache"),
             {"cache": CACHE_ALIAS, "prefix": "plain:", "keys": ["plain:delete-me"]},
             ("manage_cache",), DELETION,
             lambda: caches[CACHE_ALIAS].get("plain:delete-me") is None),
    ]


#: Every action name of every list, and names no list has.
ACTION_NAMES = ["retry_selected", "cancel_selected", "run_now_selected", "delete_selected_jobs",
                "delete_selected", "pause_selected", "resume_selected", "complete_selected"]
FORGED_NAMES = ["", "drop_table", "__init__", "__class__", "changelist_view", "delete_queryset",
                "delete_model", "log_deletions", "get_actions", "has_delete_permission",
                "retry", "cancel", "run_now", "RETRY_SELECTED", "retry_selected ",
                "retry_selected\x00", "../delete_selected", hostile("action")]
DETAIL_FORGED = ["", "delete", "retry_selected", "delete_selected_jobs", "complete", "pause",
                 "__class__", "run", "RETRY", "retry ", "cancel\x00", hostile("detail")]


def a_target(w: World, model: str) -> str:
    return str({"job": w.jobs["hostile"].pk, "jobevent": JobEvent.objects.values_list(
        "pk", flat=True).first(), "waittoken": w.tokens["hostile"].pk,
        "cronschedule": w.schedules["hostile"].pk, "worker": w.worker.pk}[model])


#: The actions each list offers a superuser.
OFFERED = {"job": {"retry_selected", "cancel_selected", "run_now_selected",
                   "delete_selected_jobs"},
           "cronschedule": {"pause_selected", "resume_selected", "run_now_selected",
                            "delete_selected"},
           "waittoken": {"complete_selected", "delete_selected"},
           "jobevent": set(), "worker": set()}


def every_post(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    """(what, url, data): every action name on every list, every button on every job's page,
    every form and the cache page's delete."""
    out = [(p.name, p.url, p.data) for p in posts(w)]
    for model in MODELS:
        for name in ACTION_NAMES:
            out.append((f"{model}: {name}", changelist(model),
                        action(name, a_target(w, model), select_across="1", confirm="yes",
                               post="yes", apply="1", output="1")))
    for key, job in w.jobs.items():
        for name in ("retry", "cancel", "run_now"):
            out.append((f"job {key}: {name}", url("job_change", job.pk), {"action": name}))
    out.append(("dashboard", url("dashboard"), {"action": "retry"}))
    out.append(("cron add", url("cronschedule_add"), cron_form(name="s-forged")))
    out.append(("cron change", url("cronschedule_change", w.schedules["hostile"].pk),
                cron_form(name="x", cron="* * * * *")))
    out.append(("cache delete", url("cache"), {"cache": CACHE_ALIAS,
                                               "keys": [hostile("cachekey")]}))
    return out


def csrf_post(client: Client, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """A POST with the CSRF token a browser would send (read from the cookie)."""
    if "csrftoken" not in client.cookies:
        client.get(reverse("admin:index"))
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
                       **kwargs)


def literal_matches(model: str, term: str) -> int:
    """How many rows the list's search should find for ``term`` taken literally: the job
    list's own exact search, or Django's (each word, or quoted phrase, contained in a search
    field, case-insensitively)."""
    from django.utils.text import smart_split, unescape_string_literal

    from django_edgejobs.services.jobs import parse_job_id

    term = term.strip()
    if model == "job":
        job_id = parse_job_id(term)
        if job_id is not None:
            return Job.objects.filter(pk=job_id).count()
        tag = term[4:] if term.startswith("tag:") else None
        n = 0
        for type_, key, tags in Job.objects.values_list("type", "idempotency_key", "tags"):
            if tag is not None:
                n += tag in (tags or [])
            else:
                n += type_ == term or key == term or term in (tags or [])
        return n
    if model == "jobevent":
        job_id = parse_job_id(term)
        return JobEvent.objects.filter(job_id=job_id).count() if job_id else 0
    if model == "waittoken":
        job_id = parse_job_id(term)
        return (WaitToken.objects.filter(job_id=job_id).count() if job_id
                else WaitToken.objects.filter(pk=term).count())
    fields = {"cronschedule": ("name", "type"), "worker": ("id", "hostname")}[model]
    rows = apps.get_model("django_edgejobs", model).objects.values_list(*fields)
    bits = []
    for bit in smart_split(term):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        bits.append(bit.lower())
    return sum(all(any(bit in str(v).lower() for v in row) for bit in bits) for row in rows)


# -- the test -----------------------------------------------------------------------------

def test_15_admin_abuse(register, settings, tally, record, monkeypatch):
    w = build_world(register, settings)
    if w.bulk <= job_actions.MAX_ROWS:  # the fast scale: a cap below the rows selected
        monkeypatch.setattr(job_actions, "MAX_ROWS", w.bulk - 50)
    cap = job_actions.MAX_ROWS
    every = all_codenames()
    users = {
        "root": make_user("root", superuser=True),
        "inactive": make_user("inactive", superuser=True, active=False),
        "not_staff": make_user("not-staff", *every, staff=False),
        "nobody": make_user("nobody"),
        "viewer": make_user("viewer", *VIEW),
    }
    clients = {name: login(users[name]) for name in ("root", "nobody", "viewer")}
    # Without CSRF enforcement, so that the admin's own login check answers.
    loose = {"anonymous": login(None, csrf=False),
             **{who: login(users[who], csrf=False) for who in ("inactive", "not_staff")}}
    all_pages = pages(w)
    every_posted = every_post(w)

    def unchanged(before: dict[str, Any], phase: str) -> None:
        assert changed_tables(before) == [], f"{phase} changed {changed_tables(before)}"

    # 1. Anonymous, inactive and non-staff users: the login page for every URL and method.
    before = snapshot()
    for who in ("anonymous", "inactive", "not_staff"):
        client = loose[who]
        for page in all_pages:
            for method in ("get", "head", "options", "put", "patch", "delete"):
                r = tally.check(getattr(client, method)(page.url), f"{who} {method} {page.url}")
                assert r.status_code == 302 and "/login/" in r["Location"], (who, method,
                                                                            page.url)
        for what, path, data in every_posted:
            r = tally.check(loose[who].post(path, data), f"{who} POST {what}")
            assert r.status_code == 302 and "/login/" in r["Location"], (who, what)
    unchanged(before, "users who are not logged-in staff")

    def refuses_every_post(who: str) -> None:
        """Every state-changing POST, with a CSRF token: 403 (405 for the dashboard)."""
        for what, path, data in every_posted:
            r = tally.check(csrf_post(clients[who], path, data), f"{who} POST {what}")
            assert r.status_code == (405 if what == "dashboard" else 403), (who, what,
                                                                            r.status_code)

    # 2. Staff without any permission: 403 everywhere (the index: nothing to see).
    nobody = clients["nobody"]
    for page in all_pages:
        r = tally.check(nobody.get(page.url, follow=True), f"nobody GET {page.url}")
        # ("<id>/" redirects to the change page, which refuses.)
        expected = {reverse("admin:index"): 200,
                    reverse("admin:app_list", args=["django_edgejobs"]): 404}.get(page.url, 403)
        assert r.status_code == expected, ("nobody", page.url, r.status_code)
    refuses_every_post("nobody")
    unchanged(before, "staff without permissions")

    # 3. View-only staff: every page, no action, every POST 403.
    viewer = clients["viewer"]
    for page in all_pages:
        r = tally.check(viewer.get(page.url), f"viewer GET {page.url}")
        expected = page.viewer if page.viewer is not None else page.ok
        assert r.status_code == expected, ("viewer", page.url, r.status_code)
        if r.status_code == 200:  # no action bar, no button
            assert 'name="action"' not in r.content.decode(), page.url
    refuses_every_post("viewer")
    unchanged(before, "view-only staff")

    # 4. POSTs without a CSRF token, from a superuser: 403, nothing changed.
    root = clients["root"]
    for what, path, data in every_posted:
        r = tally.check(root.post(path, data), f"root POST without CSRF {what}")
        assert r.status_code == 403 and b"CSRF" in r.content, ("csrf", what, r.status_code)
    unchanged(before, "POSTs without a CSRF token")

    # 5. Forged action names (with the token): 403 for a known action the admin does not
    # offer, the list again for a name no admin has; inapplicable buttons change nothing.
    for model in MODELS:
        for name in [*ACTION_NAMES, *FORGED_NAMES]:
            if name in OFFERED[model]:
                continue
            r = tally.check(csrf_post(root, changelist(model), action(
                name, a_target(w, model), select_across="1", confirm="yes", post="yes")),
                f"forged {model}: {name!r}")
            # Known to the admin (Django's delete_selected) or a list without actions: 403.
            # A name no admin has: the list again, "No action selected".
            refused = name == "delete_selected" or not OFFERED[model]
            assert r.status_code == (403 if refused else 302), (model, name, r.status_code)
    for model in MODELS:  # ids that cannot be a row's: 400 (they were a 500)
        for name in OFFERED[model]:
            for bad in ("a\x00b", "abc", "1 OR 1=1", "-1"):
                if bad != "a\x00b" and model == "waittoken":
                    continue  # any other text is a possible token id: it selects nothing
                r = tally.check(csrf_post(root, changelist(model), action(
                    name, bad, confirm="yes", post="yes", apply="1", output="1")),
                    f"selected {model}: {bad!r}")
                # "-1" is a possible schedule id: it selects nothing, the list again.
                expected = 302 if (bad == "-1" and model == "cronschedule") else 400
                assert r.status_code == expected, (model, name, bad, r.status_code)
    for key, job in w.jobs.items():
        for name in DETAIL_FORGED:
            r = tally.check(csrf_post(root, url("job_change", job.pk), {"action": name}),
                            f"forged detail {key}: {name!r}")
            assert r.status_code == 403, (key, name, r.status_code)
    unchanged(before, "forged action names")
    inapplicable = {"retry": ("running", "pending_due", "completed", "waiting", "expired"),
                    "cancel": ("running", "hostile", "completed"),
                    "run_now": ("running", "hostile", "completed", "pending_due", "waiting")}
    for name, keys in inapplicable.items():
        for key in keys:
            r = tally.check(csrf_post(root, url("job_change", w.jobs[key].pk),
                                      {"action": name}, follow=True),
                            f"inapplicable {name} on {key}")
            assert r.status_code == 200 and r.redirect_chain, (name, key)
    unchanged(before, "buttons for jobs in states they do not apply to")

    # 6. SQL and wildcards in every search box and filter; lookups outside the filters.
    for model in MODELS:
        everything = root.get(changelist(model)).context["cl"].result_count
        for term in SQL:
            for client in (root, viewer):
                r = tally.check(client.get(changelist(model, q=term)), f"{model} q={term!r}")
                assert r.status_code == 200, (model, term, r.status_code)
                if "\x00" in term:  # Django's search form refuses it: the whole list, an error
                    assert r.context["cl"].result_count == everything, (model, term)
                    assert any("Null characters" in str(m) for m in r.context["messages"])
                    continue
                assert r.context["cl"].result_count == literal_matches(model, term), (
                    model, term)
    unfiltered = root.get(changelist("job")).context["cl"].result_count
    for param in ("status", "queue", "type", "tag", "attention", "finished", "worker"):
        for term in [*SQL[:4], "a\x00b"]:
            r = tally.check(root.get(changelist("job", **{param: term})), f"{param}={term!r}")
            if "\x00" in term:  # a NUL character in a parameter: 400 (PostgreSQL: was 500)
                assert r.status_code == 400, (param, term, r.status_code)
                continue
            assert r.status_code == 200, (param, term, r.status_code)
            assert r.context["cl"].result_count in (0, unfiltered), (param, term)
    odd = [("job", {"created_at__year": "1 OR 1=1"}), ("job", {"p": "-1"}),
           ("job", {"o": "1;DROP"}), ("jobevent", {"job_id": "' OR 1=1--"}),
           ("cronschedule", {"enabled__exact": "' OR 1=1--"}),
           ("worker", {"state": "' OR 1=1--"}), ("waittoken", {"status__exact": "' OR 1"}),
           ("jobevent", {"job_id": "\x00"}), ("waittoken", {"status__exact": "\x00"}),
           ("cronschedule", {"source__exact": "\x00"}), ("job", {"created_at__year": "\x00"})]
    for model, params in odd:
        r = tally.check(root.get(changelist(model, **params)), f"{model} {params}")
        assert r.status_code in (200, 302, 400), (model, params, r.status_code)
    for path in (url("cache") + "?" + urlencode({"cache": CACHE_ALIAS, "prefix": "a\x00"}),
                 url("job_change", "\x00"), url("waittoken_change", "tok_\x00"),
                 url("worker_change", "\x00"), url("cronschedule_change", "\x00")):
        r = tally.check(root.get(path, follow=True), f"NUL in {path!r}")
        assert r.status_code == 200, (path, r.status_code)
    disallowed = [
        ("job", "payload__api_key__startswith", "s3"), ("job", "payload__api_key", "s3cret"),
        ("job", "lease_token__isnull", "False"), ("job", "pk__in", "1,2"),
        ("job", "idempotency_key__regex", ".*"), ("job", "last_error__icontains", "x"),
        ("job", "status__exact", "failed"), ("job", "created_at__gte", "2000-01-01"),
        ("job", "_to_field", "lease_token"), ("jobevent", "data__token", "s3cret"),
        ("waittoken", "output__o__startswith", "x"), ("waittoken", "job__payload__api_key", "s"),
        ("waittoken", "job__lease_token__isnull", "False"),
        ("cronschedule", "payload__p__startswith", "x"), ("cronschedule", "ticks__reason", "x"),
        ("worker", "hostname__startswith", "x"), ("worker", "queues__contains", "x"),
    ]
    for model, lookup, value in disallowed:
        for client in (root, viewer):
            r = tally.check(client.get(changelist(model, **{lookup: value})),
                            f"{model} ?{lookup}=")
            assert r.status_code == 400, (model, lookup, r.status_code)
    unchanged(before, "searches, filters and lookups")

    # 7. Each action: refused without its permission, done with it (and the token), one
    # LogEntry per object changed, by that user.
    for i, post in enumerate(posts(w)):
        lacking = login(make_user(f"lacks-{i}", *(every - set(post.needs))))
        user = make_user(f"can-{i}", *VIEW, *post.needs)
        client = login(user)
        before = snapshot()
        r = tally.check(csrf_post(lacking, post.url, post.data), f"lacking: {post.name}")
        assert r.status_code == 403, (post.name, r.status_code)
        assert not post.done(), post.name
        unchanged(before, f"{post.name} without {post.needs}")
        logs = LogEntry.objects.count()
        r = tally.check(csrf_post(client, post.url, post.data, follow=True), post.name)
        assert r.status_code == 200 and r.redirect_chain, (post.name, r.status_code)
        assert post.done(), post.name
        new = list(LogEntry.objects.order_by("pk")[logs:])
        assert len(new) == 1, (post.name, new)
        assert new[0].user_id == user.pk and new[0].action_flag == post.flag, post.name
        tally.audit_rows += len(new)
        tally.actions_done += 1
        before = snapshot()

    # 8. A superuser's GET sweep after the actions (history pages and "Recent actions" now
    # show hostile object names): every field escaped; no GET-like method changes a row.
    all_pages = pages(w)
    for client in (root,):
        for page in all_pages:
            r = tally.check(client.get(page.url), f"root GET {page.url}")
            assert r.status_code == page.ok, ("root", page.url, r.status_code)
            tally.get_requests += 1
            for method in ("head", "options"):
                tally.check(getattr(client, method)(page.url), f"root {method} {page.url}")
                tally.get_requests += 1
        # Names of actions in a GET's query string are never run.
        for model in MODELS:
            for name in ACTION_NAMES:
                query = urlencode({"action": name, "index": "0", "select_across": "1",
                                   "_selected_action": a_target(w, model), "confirm": "yes",
                                   "post": "yes", "apply": "1", "output": "1"})
                r = tally.check(client.get(f"{changelist(model)}?{query}"), f"GET {name}")
                assert r.status_code in (302, 400), (model, name, r.status_code)
                tally.get_requests += 1
        for key, job in w.jobs.items():
            for name in ("retry", "cancel", "run_now", "delete"):
                r = tally.check(client.get(url("job_change", job.pk) + f"?action={name}"),
                                f"GET detail {key} {name}")
                tally.get_requests += 1
        r = tally.check(client.get(url("cache") + "?" + urlencode(
            {"cache": CACHE_ALIAS, "keys": hostile("cachekey")})), "GET cache keys")
        tally.get_requests += 1
    # Messages of a refused or unknown id echo it, escaped.
    tally.check(root.get(url("job_change", hostile("missingid")), follow=True), "missing id")
    changed_by_get = changed_tables(before)
    assert changed_by_get == [], f"GET, HEAD or OPTIONS changed {changed_by_get}"

    # 9. Bulk: retry the whole filtered list. A confirmation first (nothing changed), then at
    # most MAX_ROWS jobs per run, a LogEntry for each; a second run does the rest.
    bulk_list = changelist("job", type="t.bulk", status="failed")
    first = Job.objects.filter(type="t.bulk").values_list("pk", flat=True).first()
    retrier = make_user("retrier", "view_job", "retry_job")
    client = login(retrier)
    before = snapshot()
    selected = list(Job.objects.filter(type="t.bulk").values_list("pk", flat=True)[:101])
    r = tally.check(csrf_post(client, changelist("job"), action("retry_selected", *selected)),
                    "bulk: 101 ticked")
    assert r.status_code == 200 and "are you sure" in r.content.decode(), r.status_code
    data = action("retry_selected", first, select_across="1")
    r = tally.check(csrf_post(client, bulk_list, data), "bulk: select all")
    page = r.content.decode()
    assert r.status_code == 200 and "are you sure" in page and "csrfmiddlewaretoken" in page
    assert r.context["count"] == cap and r.context["truncated"], (r.context["count"], cap)
    unchanged(before, "a bulk action before its confirmation")
    logs = LogEntry.objects.count()
    r = tally.check(csrf_post(client, bulk_list, {**data, "confirm": "yes"}, follow=True),
                    "bulk: confirmed")
    retried = Job.objects.filter(type="t.bulk", status="pending").count()
    assert retried == cap, (retried, cap)
    messages = [str(m) for m in r.context["messages"]]
    assert any(f"{cap} jobs retried" in m for m in messages), messages
    assert any("run the action again" in m for m in messages), messages
    bulk_logs = LogEntry.objects.count() - logs
    assert bulk_logs == cap
    assert set(LogEntry.objects.order_by("pk")[logs:].values_list("user_id", flat=True)) == {
        retrier.pk}
    r = tally.check(csrf_post(client, bulk_list, data, follow=True), "bulk: the rest")
    assert Job.objects.filter(type="t.bulk", status="failed").count() == 0
    assert LogEntry.objects.count() - logs == w.bulk
    tally.audit_rows += w.bulk
    tally.actions_done += 2

    assert tally.unescaped == [], tally.unescaped[:20]
    missing_fields = sorted((set(STORED) | set(ECHOED)) - tally.seen)
    assert missing_fields == [], f"never shown (escaped) anywhere: {missing_fields}"
    record("15. Admin abuse", requests=tally.requests, refused=tally.refused,
           get_requests=tally.get_requests, tables_changed_by_get=len(changed_by_get),
           hostile_fields=len(STORED) + len(ECHOED), unescaped=len(tally.unescaped),
           actions_done=tally.actions_done, audit_rows=tally.audit_rows,
           bulk_rows=w.bulk, bulk_cap=cap, server_errors=sum(
               n for code, n in tally.by_status.items() if code >= 500))
    assert not any(code >= 500 for code in tally.by_status), tally.by_status
