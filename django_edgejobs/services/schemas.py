"""Payload schemas: ``@job(..., schema=...)`` with a TypedDict, a dataclass or a pydantic model.

A schema is compiled once, when the handler is registered; an annotation a JSON payload cannot
hold is an ``ImproperlyConfigured`` error then, not a surprise at run time. The compiled schema
checks a payload twice:

- ``dump`` on enqueue (and ``edit_job``): the caller's dict, or an instance of the schema, is
  checked strictly (a key the schema does not know is refused: it is usually a typo) and
  returned as the JSON to store. Dataclasses and pydantic models are stored in their JSON form,
  with defaults filled in; a TypedDict payload is stored as given.
- ``load`` before each attempt: the stored JSON is checked again and turned into what the
  handler receives: an instance of the dataclass or model, or the dict for a TypedDict. Keys the
  schema does not know are ignored here (a payload enqueued by newer code during a rolling
  deploy), and a stored payload that does not match raises ``InvalidStoredPayload``, which
  fails the job without retries.

Plain schemas understand ``str``, ``int``, ``float`` (an int is accepted), ``bool``, ``None``,
``Any``, ``Literal[...]``, unions and ``Optional``, ``list[T]``, ``dict[str, T]``, and nested
TypedDicts and dataclasses. Richer types (datetimes, UUIDs, enums, constraints) need a pydantic
model, whose own rules and ``extra`` setting then apply on both sides.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints, is_typeddict

from django.core.exceptions import ImproperlyConfigured

from ..exceptions import InvalidPayload, InvalidStoredPayload

#: Errors listed in one message; the rest are counted.
MAX_ERRORS = 8

_UNION_TYPES = (typing.Union, types.UnionType)
#: TypedDict key qualifiers: what they wrap is the type.
_QUALIFIERS = tuple(getattr(typing, name) for name in ("Required", "NotRequired", "ReadOnly")
                    if hasattr(typing, name))
_JSON_SCALARS = (str, int, float, bool, type(None))


def _path(parts: tuple[str | int, ...]) -> str:
    return "payload" + "".join(f"[{p!r}]" for p in parts)


def _shown(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


class _Errors(list[str]):
    def add(self, parts: tuple[str | int, ...], text: str) -> None:
        self.append(f"{_path(parts)} {text}")

    def message(self) -> str:
        shown = "; ".join(self[:MAX_ERRORS])
        more = len(self) - MAX_ERRORS
        return shown + (f"; and {more} more problem(s)" if more > 0 else "")


# -- the nodes of a compiled plain schema ---------------------------------------------------


class _Node:
    name = "?"
    #: The JSON kinds (dict, list, str, ...) a value of this node can have; used by unions.
    kinds: tuple[type, ...] = ()

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        """A checked JSON value as the handler receives it."""
        return value


class _AnyNode(_Node):
    name = "any value"
    kinds = (dict, list, str, int, float, bool, type(None))

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        return None


class _Scalar(_Node):
    def __init__(self, tp: type):
        self.tp = tp
        self.name = "None" if tp is type(None) else tp.__name__
        self.kinds = (int, float) if tp is float else (tp,)

    def accepts(self, value: Any) -> bool:
        if self.tp is type(None):
            return value is None
        if isinstance(value, bool):
            return self.tp is bool
        if self.tp is float:
            return isinstance(value, int | float)
        return isinstance(value, self.tp)

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        if not self.accepts(value):
            errors.add(parts, f"must be {self.name}, got {_shown(value)}")


class _LiteralNode(_Node):
    def __init__(self, values: tuple[Any, ...]):
        self.values = values
        self.name = " or ".join(repr(v) for v in values)
        self.kinds = tuple({type(v) for v in values})

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        if not any(type(value) is type(v) and value == v for v in self.values):
            errors.add(parts, f"must be {self.name}, got {_shown(value)}")


class _UnionNode(_Node):
    def __init__(self, options: list[_Node]):
        self.options = options
        self.name = " or ".join(o.name for o in options)
        self.kinds = tuple(k for o in options for k in o.kinds)

    def _matching(self, value: Any, strict: bool) -> _Node | None:
        for option in self.options:
            trial = _Errors()
            option.check(value, (), trial, strict)
            if not trial:
                return option
        return None

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        if self._matching(value, strict) is not None:
            return
        # One option of the value's own kind (an object for ``Address | None``): its errors
        # say more than "must be Address or None".
        same_kind = [o for o in self.options if isinstance(value, o.kinds)]
        if len(same_kind) == 1:
            same_kind[0].check(value, parts, errors, strict)
        else:
            errors.add(parts, f"must be {self.name}, got {_shown(value)}")

    def convert(self, value: Any) -> Any:
        option = self._matching(value, False)
        return value if option is None else option.convert(value)


class _ListNode(_Node):
    kinds = (list, tuple)

    def __init__(self, item: _Node):
        self.item = item
        self.name = f"list[{item.name}]" if not isinstance(item, _AnyNode) else "list"

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        if not isinstance(value, list | tuple):
            errors.add(parts, f"must be {self.name}, got {_shown(value)}")
            return
        for index, item in enumerate(value):
            self.item.check(item, (*parts, index), errors, strict)
            if len(errors) > MAX_ERRORS:
                return

    def convert(self, value: Any) -> Any:
        return [self.item.convert(v) for v in value]


class _DictNode(_Node):
    kinds = (dict,)

    def __init__(self, item: _Node):
        self.item = item
        self.name = f"dict[str, {item.name}]" if not isinstance(item, _AnyNode) else "dict"

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        if not isinstance(value, dict):
            errors.add(parts, f"must be {self.name}, got {_shown(value)}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                errors.add(parts, f"has a key {key!r} that is not a string")
                continue
            self.item.check(item, (*parts, key), errors, strict)
            if len(errors) > MAX_ERRORS:
                return

    def convert(self, value: Any) -> Any:
        return {k: self.item.convert(v) for k, v in value.items()}


class _ObjectNode(_Node):
    """A TypedDict or a dataclass: named fields, some required."""

    kinds = (dict,)

    def __init__(self, cls: type):
        self.cls = cls
        self.name = cls.__name__
        self.is_dataclass = dataclasses.is_dataclass(cls)
        self.fields: dict[str, _Node] = {}
        self.required: frozenset[str] = frozenset()
        #: Dataclass fields outside ``__init__`` (``init=False``): accepted, never passed on.
        self.ignored: frozenset[str] = frozenset()

    def check(self, value: Any, parts: tuple[str | int, ...], errors: _Errors,
              strict: bool) -> None:
        if not isinstance(value, dict):
            what = "the payload" if not parts else _path(parts)
            errors.append(f"{what} must be an object ({self.name}), got {_shown(value)}")
            return
        for name in sorted(self.required - value.keys()):
            errors.add((*parts, name), f"is missing (required by {self.name})")
        for key, item in value.items():
            node = self.fields.get(key) if isinstance(key, str) else None
            if node is not None:
                node.check(item, (*parts, key), errors, strict)
            elif strict and key not in self.ignored:
                close = difflib.get_close_matches(str(key), list(self.fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    f" (fields: {', '.join(self.fields) or 'none'})")
                errors.add((*parts, key), f"is not a field of {self.name}{hint}")
            if len(errors) > MAX_ERRORS:
                return

    def convert(self, value: Any) -> Any:
        if not self.is_dataclass:
            return {k: (self.fields[k].convert(v) if k in self.fields else v)
                    for k, v in value.items()}
        return self.cls(**{k: self.fields[k].convert(v) for k, v in value.items()
                           if k in self.fields})


# -- compiling annotations ----------------------------------------------------------------


def _unsupported(tp: Any, where: str) -> ImproperlyConfigured:
    shown = tp.__name__ if isinstance(tp, type) else repr(tp)
    return ImproperlyConfigured(
        f"{where} has type {shown}, which a plain "
        "payload schema cannot check: use str, int, float, bool, None, Any, Literal, list[...], "
        "dict[str, ...], a TypedDict or a dataclass (a JSON payload holds nothing else), "
        "or make the schema a pydantic model to use richer types"
    )


def _compile(tp: Any, where: str, seen: dict[type, _ObjectNode]) -> _Node:
    if tp is Any or tp is object:
        return _AnyNode()
    if tp is None or tp is type(None):
        return _Scalar(type(None))
    if tp in (str, int, float, bool):
        return _Scalar(tp)
    if tp is list:
        return _ListNode(_AnyNode())
    if tp is dict:
        return _DictNode(_AnyNode())
    if isinstance(tp, typing.TypeAliasType):
        return _compile(tp.__value__, where, seen)
    supertype = getattr(tp, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _compile(supertype, where, seen)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        if not all(isinstance(a, _JSON_SCALARS) for a in args):
            raise _unsupported(tp, where)
        return _LiteralNode(args)
    if origin in _UNION_TYPES:
        return _UnionNode([_compile(a, where, seen) for a in args])
    if origin is typing.Annotated or origin in _QUALIFIERS:
        return _compile(args[0], where, seen)
    if origin is list:
        return _ListNode(_compile(args[0], f"{where}[]", seen) if args else _AnyNode())
    if origin is dict:
        if args and args[0] is not str:
            raise ImproperlyConfigured(
                f"{where} is {tp!r}: JSON object keys are strings, use dict[str, ...]")
        return _DictNode(_compile(args[1], f"{where}[]", seen) if args else _AnyNode())
    if isinstance(tp, type) and (is_typeddict(tp) or dataclasses.is_dataclass(tp)):
        return _object(tp, seen)
    raise _unsupported(tp, where)


def _object(cls: type, seen: dict[type, _ObjectNode]) -> _ObjectNode:
    if cls in seen:  # a recursive schema: the node is being filled in already
        return seen[cls]
    node = seen[cls] = _ObjectNode(cls)
    try:
        hints = get_type_hints(cls, include_extras=True)
    except Exception as exc:  # a forward reference that does not resolve
        raise ImproperlyConfigured(
            f"the annotations of {cls.__name__} cannot be resolved: {exc}") from exc
    if node.is_dataclass:
        fields = [f for f in dataclasses.fields(cls) if f.init]
        node.ignored = frozenset(f.name for f in dataclasses.fields(cls) if not f.init)
        node.required = frozenset(
            f.name for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        names = [f.name for f in fields]
    else:
        names = list(hints)
        # ``__required_keys__`` misses Required/NotRequired written as strings (postponed
        # annotations); the resolved hints carry them.
        required = set(cls.__required_keys__)  # type: ignore[attr-defined]
        for name, hint in hints.items():
            origin = get_origin(hint)
            if origin is typing.NotRequired:
                required.discard(name)
            elif origin is typing.Required:
                required.add(name)
        node.required = frozenset(required)
    node.fields = {name: _compile(hints[name], f"{cls.__name__}.{name}", seen)
                   for name in names}
    return node


# -- the compiled schemas -----------------------------------------------------------------


class PayloadSchema:
    """A compiled schema. ``dump``: what to store; ``load``: what the handler receives."""

    name: str
    kind: str

    def dump(self, payload: Any, *, where: str) -> Any:
        raise NotImplementedError

    def load(self, data: Any, *, job_type: str) -> Any:
        raise NotImplementedError

    def _stored_error(self, job_type: str, problems: str) -> InvalidStoredPayload:
        return InvalidStoredPayload(
            f"the stored payload does not match {self.name}, the schema of job type "
            f"{job_type!r}: {problems}")


class PlainSchema(PayloadSchema):
    def __init__(self, cls: type):
        self.cls = cls
        self.name = cls.__name__
        self.kind = "dataclass" if dataclasses.is_dataclass(cls) else "typeddict"
        self.root = _object(cls, {})

    def dump(self, payload: Any, *, where: str) -> Any:
        if self.kind == "dataclass" and isinstance(payload, self.cls):
            payload = dataclasses.asdict(payload)  # type: ignore[call-overload]
        payload = {} if payload is None else payload
        errors = _Errors()
        self.root.check(payload, (), errors, True)
        if errors:
            raise InvalidPayload(f"{where}: payload does not match {self.name}: "
                                 f"{errors.message()}")
        if self.kind == "typeddict":
            return payload
        try:  # build it, so defaults are filled in and __post_init__ checks run now
            instance = self.root.convert(payload)
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(f"{where}: payload does not make a valid {self.name}: "
                                 f"{type(exc).__name__}: {exc}") from exc
        return dataclasses.asdict(instance)

    def load(self, data: Any, *, job_type: str) -> Any:
        errors = _Errors()
        self.root.check(data, (), errors, False)
        if errors:
            raise self._stored_error(job_type, errors.message())
        try:
            return self.root.convert(data)
        except (TypeError, ValueError) as exc:
            raise self._stored_error(job_type, f"{type(exc).__name__}: {exc}") from exc


class PydanticSchema(PayloadSchema):
    kind = "pydantic"

    def __init__(self, cls: type):
        import pydantic

        self.cls = cls
        self.name = cls.__name__
        self.adapter: Any = pydantic.TypeAdapter(cls)
        self._error = pydantic.ValidationError

    @staticmethod
    def _problems(exc: Any) -> str:
        errors = _Errors()
        for err in exc.errors(include_url=False):
            where = _path(tuple(err.get("loc", ()))) if err.get("loc") else "the payload"
            shows_input = "input" in err and err.get("loc") and err.get("type") != "missing"
            got = f" (got {_shown(err['input'])})" if shows_input else ""
            errors.append(f"{where}: {err['msg']}{got}")
        return errors.message()

    def dump(self, payload: Any, *, where: str) -> Any:
        if not isinstance(payload, self.cls):
            try:
                payload = self.adapter.validate_python({} if payload is None else payload)
            except self._error as exc:
                raise InvalidPayload(f"{where}: payload does not match {self.name}: "
                                     f"{self._problems(exc)}") from None
        try:
            return self.adapter.dump_python(payload, mode="json")
        except Exception as exc:  # a value the model cannot write as JSON
            raise InvalidPayload(f"{where}: {self.name} cannot be written as JSON: "
                                 f"{exc}") from None

    def load(self, data: Any, *, job_type: str) -> Any:
        try:
            return self.adapter.validate_python(data)
        except self._error as exc:
            raise self._stored_error(job_type, self._problems(exc)) from None


def _is_pydantic(schema: type) -> bool:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:  # a pydantic class cannot exist without pydantic imported
        return False
    return issubclass(schema, pydantic.BaseModel) or bool(
        pydantic.dataclasses.is_pydantic_dataclass(schema))


def compile_schema(schema: Any, *, where: str) -> PayloadSchema:
    """Compile ``@job(schema=...)``; ImproperlyConfigured when it cannot be used."""
    if not isinstance(schema, type):
        raise ImproperlyConfigured(
            f"{where}: schema must be a TypedDict, a dataclass or a pydantic model class, "
            f"got {schema!r}")
    if _is_pydantic(schema):
        return PydanticSchema(schema)
    if is_typeddict(schema) or dataclasses.is_dataclass(schema):
        try:
            return PlainSchema(schema)
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f"{where}: {exc}") from None
    raise ImproperlyConfigured(
        f"{where}: schema must be a TypedDict, a dataclass or a pydantic model class, got "
        f"{schema.__name__}")
