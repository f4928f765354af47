"""A generic, read-only walk over a running simulation's state, and the comparison of two walks
a day apart modulo the shift of time (issue 18 item 2: the proof behind a jump over whole days,
:mod:`fuseguard.scenario.dayjump`).

:func:`capture` turns an object graph into a flat, canonical list of entries ``(path, kind,
value)``: every dataclass, ``__dict__`` / ``__slots__`` object, dict, list, tuple, deque, set,
NumPy array, enum, datetime, bound method, ``functools.partial``, closure (its cells),
coroutine (its suspension point and locals, what it awaits), asyncio task and future (state,
waiter, callbacks) it reaches, in a deterministic order (attributes by name, containers in
their own order), a second visit of an object as a reference to its first (so aliasing is
compared too). Nothing is written: the walk reads attributes, never calls the objects' code
(no properties, no ``__eq__``, no ``__repr__`` of user classes).

Anything it cannot see into (a C object with hidden state such as a socket, a file, a lock, an
iterator) makes the walk fail: :class:`UnwalkableError` names the path, and the caller (the day
jump) refuses to jump. Objects excluded on purpose are passed by the caller with the reason,
and are recorded as such in the capture (so both captures exclude the same things).

:func:`first_difference` compares two captures: same structure, same atoms (str, int, bool,
enum, code identity), and every float (and datetime) either equal or later by exactly the
clock shift between the captures (a time value). No tolerance: the scenario's clock times are
sums of whole seconds and binary-fraction ticks, exact in a float, so a time value shifted by a
day's clock advance is ``a + shift`` bit for bit; a time value off by an ulp is a different
value (a deadline that coincides with a tick in one run and misses it in the other) and is
refused.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import decimal
import enum
import functools
import itertools
import math
import random
import types
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np


class UnwalkableError(Exception):
    """The walk reached an object whose state it cannot see (a closure over C state, a socket,
    an iterator...): no proof possible, the caller must refuse."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path}: cannot walk {what}")
        self.path = path
        self.what = what


#: kinds of entries
ATOM = "atom"  # compared with ==
FLOAT = "float"  # equal, or later by exactly the shift
TIME = "datetime"  # equal, or later by exactly the shift (as a timedelta)
ARRAY = "array"  # a float array: elementwise as FLOAT
TIME_INT = "time int"  # an int time in a declared unit: equal, or later by shift / unit
NODE = "node"  # an object's type (structure)
REF = "ref"  # a second visit of an object: the index of its first visit
SKIP = "excluded"  # excluded by the caller, with its reason

Entry = tuple[str, str, Any]

#: a class attribute naming instance attributes that only cache what the others determine
#: (a memo rebuilt when empty): the walk records them as skipped instead of comparing them
MEMO_HOOK = "__fuseguard_memo__"
#: a class attribute naming instance attributes that only count for the outside world (an
#: energy register, a write tally) and that nothing in the simulated system reads back into a
#: decision (``tests/scenario/test_statewalk.py`` checks that control/ and allocation/ never
#: read them): recorded as skipped too. They grow day after day, so no state would ever repeat
#: with them; a day jump leaves them lower than the tick run would (nothing reads them).
COUNTER_HOOK = "__fuseguard_counters__"

#: immutable values compared as they are (``...``: structlog's value of an unbound context variable)
_ATOMS = (
    type(None),
    type(Ellipsis),
    bool,
    int,
    str,
    bytes,
    complex,
    Decimal,
    Fraction,
    timedelta,
    date,
    time,
)
_CODE = (
    types.BuiltinFunctionType,
    types.ModuleType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _short(obj: Any) -> str:
    return type(obj).__qualname__


class _Walker:
    def __init__(
        self,
        excluded: Mapping[int, str],
        skip_attrs: Mapping[type, frozenset[str]],
        driver: object | None,
        time_ints: Mapping[type, float],
    ) -> None:
        self.out: list[Entry] = []
        self._seen: dict[int, int] = {}
        self._keep: list[object] = []  # every walked object stays alive: ids stay unique
        self._excluded = excluded
        self._skip_attrs = skip_attrs
        self._driver = driver
        self._time_ints = time_ints
        self._unit: float | None = None  # inside an object whose ints are times in this unit
        self.tasks: set[int] = set()

    def emit(self, path: str, kind: str, value: Any) -> None:
        self.out.append((path, kind, value))

    def walk(self, obj: Any, path: str) -> None:
        t = type(obj)
        if t is float:
            self.emit(path, FLOAT, obj)
            return
        if t is int and self._unit is not None:
            self.emit(path, TIME_INT, (self._unit, obj))
            return
        if t in _ATOMS:
            self.emit(path, ATOM, (t.__name__, obj))
            return
        if isinstance(obj, enum.Enum):
            self.emit(path, ATOM, (_qualname(t), obj.name))
            return
        if isinstance(obj, float):  # a float subclass (numpy's float64 included)
            self.emit(path, FLOAT, float(obj))
            return
        if isinstance(obj, np.integer | np.bool_):
            self.emit(path, ATOM, (t.__name__, obj.item()))
            return
        if isinstance(obj, np.floating):
            self.emit(path, FLOAT, float(obj))
            return
        if isinstance(obj, datetime):
            self.emit(path, TIME, obj)
            return
        if isinstance(obj, type | types.FunctionType) and not getattr(obj, "__closure__", None):
            self.emit(path, ATOM, ("code", _qualname(obj)))
            return
        if isinstance(obj, _CODE) and not _bound_builtin(obj):
            self.emit(path, ATOM, ("code", _qualname(obj), getattr(obj, "__name__", "")))
            return
        key = id(obj)
        if key in self._excluded:
            self.emit(path, SKIP, self._excluded[key])
            return
        if key in self._seen:
            self.emit(path, REF, self._seen[key])
            return
        self._seen[key] = len(self.out)
        self._keep.append(obj)
        self.emit(path, NODE, _qualname(t))
        self._inside(obj, t, path)

    def _items(self, items: Iterable[Any], path: str) -> None:
        n = 0
        for i, item in enumerate(items):
            self.walk(item, f"{path}[{i}]")
            n += 1
        self.emit(path, ATOM, ("len", n))

    def _inside(self, obj: Any, t: type, path: str) -> None:
        if isinstance(obj, dict):
            if hasattr(obj, "default_factory"):
                self.walk(obj.default_factory, f"{path}.default_factory")
            for k, v in obj.items():
                self.walk(k, f"{path}.key")
                self.walk(v, f"{path}[{k!r}]" if type(k) in (str, int) else f"{path}[...]")
            self.emit(path, ATOM, ("len", len(obj)))
            if t is not dict and hasattr(obj, "__dict__"):
                self._attrs(obj, t, path)
        elif isinstance(obj, list | tuple | set | frozenset):
            self._items(obj, path)
            if t not in (list, tuple, set, frozenset) and hasattr(obj, "__dict__"):
                self._attrs(obj, t, path)  # a named tuple's fields are its items
        elif isinstance(obj, deque):
            self.emit(path, ATOM, ("maxlen", obj.maxlen))
            self._items(obj, path)
        elif isinstance(obj, np.ndarray):
            self.emit(path, ATOM, ("shape", obj.dtype.str, obj.shape))
            if obj.dtype.kind == "f":
                self.emit(path, ARRAY, obj.copy())
            elif obj.dtype.kind in "biuSU":
                self.emit(path, ATOM, ("bytes", obj.tobytes()))
            else:
                raise UnwalkableError(path, f"a NumPy array of dtype {obj.dtype}")
        elif isinstance(obj, types.MethodType):
            self.walk(obj.__func__, f"{path}.__func__")
            self.walk(obj.__self__, f"{path}.__self__")
        elif isinstance(obj, types.BuiltinMethodType):
            self.emit(path, ATOM, ("method", obj.__name__))
            self.walk(obj.__self__, f"{path}.__self__")
        elif isinstance(obj, types.FunctionType):  # a closure: its code and its cells
            self.emit(path, ATOM, ("code", _qualname(obj)))
            for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=True):
                try:
                    content = cell.cell_contents
                except ValueError:
                    self.emit(f"{path}.<{name}>", ATOM, ("empty cell",))
                    continue
                self.walk(content, f"{path}.<{name}>")
        elif isinstance(obj, functools.partial):
            self.walk(obj.func, f"{path}.func")
            self._items(obj.args, f"{path}.args")
            self.walk(obj.keywords, f"{path}.keywords")
        elif isinstance(obj, types.CoroutineType | types.GeneratorType | types.AsyncGeneratorType):
            self._frame_owner(obj, path)
        elif isinstance(obj, asyncio.Future):
            self._future(obj, path)
        elif isinstance(obj, contextvars.Context):
            for var, value in sorted(obj.items(), key=lambda kv: kv[0].name):
                self.emit(f"{path}.var", ATOM, ("contextvar", var.name))
                self.walk(value, f"{path}[{var.name}]")
        elif isinstance(obj, decimal.Context):  # a context variable's value: its settings
            self.emit(path, ATOM, ("decimal context", repr(obj)))
        elif isinstance(obj, random.Random):
            self.emit(path, ATOM, ("random", obj.getstate()))
        elif isinstance(obj, itertools.count):
            self.emit(path, ATOM, ("count", repr(obj)))
        elif dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__") or _slots(t):
            if t.__module__ == "builtins" or not _python_class(t):
                raise UnwalkableError(path, f"a {_qualname(t)} (C object, hidden state)")
            self._attrs(obj, t, path)
        else:
            raise UnwalkableError(path, f"a {_qualname(t)}")

    def _attrs(self, obj: Any, t: type, path: str) -> None:
        unit = self._time_ints.get(t)
        if unit is None:
            self._fields(obj, t, path)
            return
        outer, self._unit = self._unit, unit
        try:
            self._fields(obj, t, path)
        finally:
            self._unit = outer

    def _fields(self, obj: Any, t: type, path: str) -> None:
        skip = frozenset(getattr(t, MEMO_HOOK, ())) | frozenset(getattr(t, COUNTER_HOOK, ()))
        for cls, skipped in self._skip_attrs.items():
            if isinstance(obj, cls):
                skip |= skipped
        names = set(_slots(t))
        names.update(getattr(obj, "__dict__", {}))
        for name in sorted(names - skip):
            try:
                value = object.__getattribute__(obj, name)
            except AttributeError:
                self.emit(f"{path}.{name}", ATOM, ("unset",))
                continue
            self.walk(value, f"{path}.{name}")
        for name in sorted(names & skip):
            self.emit(f"{path}.{name}", SKIP, "excluded attribute")

    def _frame_owner(self, obj: Any, path: str) -> None:
        if isinstance(obj, types.CoroutineType):
            frame, awaiting, running = obj.cr_frame, obj.cr_await, obj.cr_running
        elif isinstance(obj, types.GeneratorType):
            frame, awaiting, running = obj.gi_frame, obj.gi_yieldfrom, obj.gi_running
        else:
            frame, awaiting, running = obj.ag_frame, obj.ag_await, obj.ag_running
        if running:
            raise UnwalkableError(path, f"the running {_qualname(obj)}")
        self.emit(path, ATOM, ("code", obj.__qualname__))
        if frame is None:  # finished (or not started: then its arguments are its state)
            self.emit(path, ATOM, ("frame", None))
            return
        self.emit(path, ATOM, ("at", frame.f_lasti))
        self.walk(dict(frame.f_locals), f"{path}<locals>")
        if awaiting is not None and type(awaiting).__name__ == "FutureIter":
            # ``await fut`` on a C future: its iterator hides the future, which the task's
            # waiter (``_fut_waiter``) names; the iterator itself holds nothing else
            self.emit(f"{path}.await", ATOM, ("future iterator",))
        elif awaiting is not None:
            self.walk(awaiting, f"{path}.await")

    def _future(self, fut: asyncio.Future[Any], path: str) -> None:
        if fut is self._driver:
            raise UnwalkableError(path, "the runner's own task (reached from the state)")
        self.emit(path, ATOM, ("state", fut._state))
        if isinstance(fut, asyncio.Task):
            self.tasks.add(id(fut))
            # a cancellation asked for and the future waited on (CPython's task attributes)
            self.emit(path, ATOM, ("must cancel", getattr(fut, "_must_cancel")))  # noqa: B009
            self.walk(fut.get_coro(), f"{path}.coro")
            self.walk(getattr(fut, "_fut_waiter"), f"{path}._fut_waiter")  # noqa: B009
        if fut.done() and not fut.cancelled():
            exc = fut.exception()
            if exc is not None:
                raise UnwalkableError(path, f"a future holding {_short(exc)}")
            self.walk(fut.result(), f"{path}.result")
        callbacks = fut._callbacks or []
        for i, (cb, ctx) in enumerate(callbacks):
            self.walk(cb, f"{path}.callbacks[{i}]")
            self.walk(ctx, f"{path}.callbacks[{i}].context")


def _bound_builtin(obj: object) -> bool:
    """A C method bound to an object (``task.__wakeup``), not to a module."""
    owner = getattr(obj, "__self__", None)
    return isinstance(obj, types.BuiltinMethodType) and not (
        owner is None or isinstance(owner, types.ModuleType)
    )


def _slots(t: type) -> list[str]:
    out: list[str] = []
    for cls in t.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        out += [s for s in slots if s not in ("__dict__", "__weakref__")]
    return out


_HEAPTYPE = 1 << 9
_IMMUTABLETYPE = 1 << 8


def _python_class(t: type) -> bool:
    """Every class of ``t``'s MRO below ``object`` is a class statement's (a mutable heap
    type): its state is in ``__dict__`` / ``__slots__``, none hidden in C."""
    return all(
        cls is object or (cls.__flags__ & _HEAPTYPE and not cls.__flags__ & _IMMUTABLETYPE)
        for cls in t.__mro__
    )


@dataclass(frozen=True)
class Capture:
    """The canonical state of a run at one instant of its clock."""

    clock_s: float
    entries: list[Entry]


def capture(
    roots: Iterable[tuple[str, object]],
    clock_s: float,
    *,
    excluded: Mapping[int, str] | None = None,
    skip_attrs: Mapping[type, frozenset[str]] | None = None,
    driver: object | None = None,
    tasks: Iterable[asyncio.Task[Any]] = (),
    time_ints: Mapping[type, float] | None = None,
) -> Capture:
    """The canonical walk of ``roots`` (named), at clock time ``clock_s``.

    ``excluded``: ``id(obj) -> reason`` of objects not walked (recorded as excluded);
    ``skip_attrs``: attribute names not walked on instances of a class (recorded too);
    ``driver``: the task running the capture (reaching it is an error); ``tasks``: every other
    live task: each must have been reached from the roots (a task nothing refers to could still
    run and change state unseen), else :class:`UnwalkableError`; ``time_ints``: classes whose
    ints (anywhere inside an instance) are times in a unit of that many seconds (a minute
    number), compared as times.
    """
    w = _Walker(excluded or {}, skip_attrs or {}, driver, time_ints or {})
    for name, root in roots:
        w.walk(root, name)
    for task in tasks:
        if task is not driver and id(task) not in w.tasks and not task.done():
            raise UnwalkableError(f"task {task.get_name()}", "a live task not reached")
    return Capture(clock_s, w.out)


def first_difference(a: Capture, b: Capture) -> str | None:
    """None if ``b`` is ``a`` moved later by ``b.clock_s - a.clock_s`` (see the module
    docstring), else the path and what differs."""
    shift = b.clock_s - a.clock_s
    if not shift > 0:
        return f"clock shift {shift!r} is not positive"
    dt = timedelta(seconds=shift)
    for (pa, ka, va), (pb, kb, vb) in zip(a.entries, b.entries, strict=False):
        if pa != pb or ka != kb:
            return f"structure: {pa} ({ka}) vs {pb} ({kb})"
        if ka == FLOAT:
            if not _same_float(va, vb, shift):
                return f"{pa}: {va!r} vs {vb!r} (shift {shift!r})"
        elif ka == TIME:
            if va != vb and vb - va != dt:
                return f"{pa}: {va} vs {vb} (shift {shift!r})"
        elif ka == TIME_INT:
            (unit, x), (_, y) = va, vb
            if x != y and (y - x) * unit != shift:
                return f"{pa}: {x!r} vs {y!r} (time in units of {unit:g} s, shift {shift!r})"
        elif ka == ARRAY:
            if va.shape != vb.shape or not bool(
                np.all((va == vb) | (va + shift == vb) | (np.isnan(va) & np.isnan(vb)))
            ):
                return f"{pa}: float array differs"
        elif va != vb:
            return f"{pa}: {_brief(va)} vs {_brief(vb)}"
    if len(a.entries) != len(b.entries):
        n = min(len(a.entries), len(b.entries))
        longer = a.entries if len(a.entries) > n else b.entries
        return f"structure: {len(a.entries)} vs {len(b.entries)} entries, from {longer[n][0]}"
    return None


def _same_float(x: float, y: float, shift: float) -> bool:
    if x == y:
        return True
    if math.isnan(x) and math.isnan(y):
        return True
    return x + shift == y and y - shift == x


def _brief(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


__all__ = ["Capture", "UnwalkableError", "capture", "first_difference"]
