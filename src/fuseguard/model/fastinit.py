"""A cheaper ``__init__`` for the frozen slotted dataclasses built on every decision.

``@dataclass(frozen=True)`` generates an ``__init__`` that stores each field with
``object.__setattr__(self, name, value)`` (a frozen class's own ``__setattr__`` refuses), which
looks the slot up by name every time: a 21-field allocator ``Plug`` costs ~3.8 us to build,
a ``Phases`` ~0.66 us, and the controller builds several per plug per decision.
:func:`fast_init` replaces it with one that stores through each slot's descriptor directly
(what ``object.__setattr__`` ends up calling): the same parameters, defaults (the same default
objects) and default factories, the same stored values; ~half the cost. The class stays frozen
(assignment still raises ``FrozenInstanceError``); equality, hashing, ``repr``, ``replace`` and
pickling are the dataclass's. A class with ``__post_init__``, an ``init=False`` field or no
slots is refused (``TypeError``): its ``__init__`` does more than store the fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class _Factory:
    """The default of a parameter with a default factory (shown as dataclass shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen slotted dataclass ``cls`` a descriptor-storing ``__init__`` (see the
    module docstring); returns ``cls``. Apply it above ``@dataclass``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        msg = f"fast_init: {cls.__name__} is not a frozen slotted dataclass"
        raise TypeError(msg)
    if hasattr(cls, "__post_init__"):
        msg = f"fast_init: {cls.__name__} has a __post_init__"
        raise TypeError(msg)
    ns: dict[str, Any] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            msg = f"fast_init: {cls.__name__}.{f.name} is not an __init__ parameter"
            raise TypeError(msg)
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)
        ns[f"_set_{f.name}"] = slot.__set__
        if f.default is not dataclasses.MISSING:
            ns[f"_dflt_{f.name}"] = f.default
            param = f"{f.name}=_dflt_{f.name}"
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_fact_{f.name}"] = f.default_factory
            param = f"{f.name}=_FACTORY"
            body.append(f"    if {f.name} is _FACTORY:\n        {f.name} = _fact_{f.name}()")
        else:
            param = f.name
        (keyword if f.kw_only else positional).append(param)
        body.append(f"    _set_{f.name}(self, {f.name})")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({signature}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, ns)  # noqa: S102 - generated from the dataclass's own fields, as dataclass does
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


__all__ = ["fast_init"]
