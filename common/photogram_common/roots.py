"""A process's composition root: one typed object built by its `app.py`, on its app.

Routes reach what they need through `root_of` (a typed dependency), never through an
attribute of `app.state` named nowhere. The root's fields are also set on `app.state`
by name, for tests and tools to look into a running app; no service reads them there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette

T = TypeVar("T")


@dataclass(frozen=True)
class ServiceRoot:
    """What every service behind the gateway has: the secret its callers' tokens carry."""

    internal_secret: str


def install_root(app: Starlette, root: Any) -> None:
    app.state.root = root
    for part in dataclasses.fields(root):
        setattr(app.state, part.name, getattr(root, part.name))


def root_of(app: Any, kind: type[T]) -> T:
    """The app's root, which must be a `kind`."""
    root = app.state.root
    if not isinstance(root, kind):
        raise TypeError(f"{type(root).__name__} is not a {kind.__name__}")
    return root
