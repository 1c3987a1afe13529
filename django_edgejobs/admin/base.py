"""What every admin of this app shares."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.contrib.admin import helpers
from django.core.exceptions import BadRequest, FieldDoesNotExist, PermissionDenied, ValidationError
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

from . import display


def time_column(field: str, description: str) -> Any:
    """A list column or read-only field showing ``field`` with ``display.when`` (to the second,
    with the time zone; Django's own shows the minute in the project's format)."""

    @admin.display(description=description, ordering=field)
    def column(self: Any, obj: Any) -> str:
        return display.when(getattr(obj, field))

    column.__name__ = f"{field}_when"
    return column


class GuardedActionsMixin:
    """A POST that names an action the user may not run gets a 403 (Django alone answers
    "no action selected" with a redirect, which hides a forged request). So does any action
    POST (one with the action bar's ``index``) to a list that offers this user no action at
    all: no page sent it (Django alone would render the list, or redirect). A selected id
    that is not a possible primary key (``abc`` for a number or a UUID, a NUL character) gets
    a 400 (Django alone fails with a 500 when the action reads its rows)."""

    def changelist_view(self, request: HttpRequest, extra_context=None):
        model_admin: Any = self  # a mixin of ModelAdmin
        if request.method == "POST" and "index" in request.POST:
            known = {a.name for a in model_admin._get_base_actions()} | {"delete_selected"}
            allowed = set(model_admin.get_actions(request))
            if not allowed or any(n in known and n not in allowed
                                  for n in request.POST.getlist("action")):
                raise PermissionDenied
            pk = model_admin.model._meta.pk
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                try:
                    if "\x00" in value:
                        raise ValidationError("NUL")
                    pk.to_python(value)
                except ValidationError:
                    raise BadRequest("not an id of this list") from None
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


class UrlInputMixin:
    """What a URL may ask of a list or an object page.

    An id with a NUL character finds no object (the "does not exist" redirect; PostgreSQL
    would refuse the query with a 500). A query parameter with a NUL character gets a 400.

    A list is filtered by URL only through its own filters and date hierarchy.

    Django alone lets a URL filter a list on any lookup of the model's own fields, e.g.
    ``?payload__api_key__startswith=a``: a viewer could read a masked secret one character at
    a time from the counts (and make a big table scan its JSON). Here a parameter that names
    a field of the model (or ``pk``) is refused (``400 Bad Request``) unless it is a list
    filter's parameter, a ``field__exact``/``field__isnull`` of a field filter, the date
    hierarchy's ``__year``/``__month``/``__day``, or one of ``extra_lookups``. A parameter
    that names no field keeps Django's answer: the list again, with ``?e=1``.
    """

    extra_lookups: tuple[str, ...] = ()

    def listed_lookups(self, request: HttpRequest) -> set[str]:
        model_admin: Any = self  # a mixin of ModelAdmin
        names = set(self.extra_lookups)
        if model_admin.date_hierarchy:
            names |= {f"{model_admin.date_hierarchy}__{part}"
                      for part in ("year", "month", "day")}
        for item in model_admin.get_list_filter(request):
            if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
                names.add(cast(str, item.parameter_name))
            else:
                field = item[0] if isinstance(item, list | tuple) else item
                names |= {f"{field}__exact", f"{field}__isnull"}
        return names

    def get_object(self, request: HttpRequest, object_id: str, from_field=None):
        if "\x00" in str(object_id):
            return None
        return super().get_object(request, object_id, from_field)  # type: ignore[misc]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        if "\x00" in str(value):
            return False
        if lookup in self.listed_lookups(request):
            return True
        model_admin: Any = self
        first = lookup.split(LOOKUP_SEP, 1)[0]
        if first == "pk":
            return False
        try:
            model_admin.model._meta.get_field(first)
        except FieldDoesNotExist:
            return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]
        return False


class ReadOnlyMixin:
    """Nothing here is added or edited through a form: state changes go through actions."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def log_change(request: HttpRequest, objects, message: str) -> None:
    from django.contrib.admin.models import CHANGE, LogEntry

    LogEntry.objects.log_actions(user_id=cast(int, request.user.pk), queryset=objects,
                                 action_flag=CHANGE,
                                 change_message=message)


NO_FACETS = admin.ShowFacets.NEVER
