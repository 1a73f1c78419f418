"""Registries of the pluggable parts: models, negative samplers, losses and data formats.

Each registry maps a name (a config value, a ``click.Choice``) to what implements it, with a
one-line description for ``--help``. The registries are declared here, in a module that imports
nothing of the package, so that ``config`` can validate names against them; the modules that
implement the parts fill them (``@NEGATIVES.register("uniform", "...")`` next to the class). A
registry imports its ``home`` module the first time it is read, so that its names are complete
whichever module asked first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names, in registration order, each with its implementation and a one-line description.

    Args:
        setting: the config key the names are values of (``"negatives.kind"``), for error messages.
        home: the module (or package) whose import registers every entry.
    """

    def __init__(self, setting: str, home: str) -> None:
        self.setting = setting
        self.home = home
        self._entries: dict[str, tuple[T, str]] = {}

    def register(self, name: str, description: str) -> Callable[[T], T]:
        """A decorator that registers its argument as ``name`` and returns it unchanged."""

        def add(value: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.setting}: {name!r} is registered twice")
            self._entries[name] = (value, description)
            return value

        return add

    def _loaded(self) -> dict[str, tuple[T, str]]:
        importlib.import_module(self.home)  # (once: Python caches modules)
        return self._entries

    def names(self) -> tuple[str, ...]:
        return tuple(self._loaded())

    def describe(self) -> str:
        """``"name: description; ..."`` of every entry, for ``--help``."""
        return "; ".join(f"{name}: {description}" for name, (_, description) in self._loaded().items())

    def check(self, name: Any) -> None:
        """Raises ValueError (``"<setting> must be one of a, b; got 'x'"``) unless ``name`` is registered."""
        if name not in self._loaded():
            raise ValueError(f"{self.setting} must be one of {', '.join(self.names())}; got {name!r}")

    def __getitem__(self, name: str) -> T:
        self.check(name)
        return self._entries[name][0]


# What each holds is typed where it is filled (its home), which this module does not import.
MODELS: Registry[Any] = Registry("model.name", "dgl_tgnn.models")  # models.ModelSpec
NEGATIVES: Registry[Any] = Registry("negatives.kind", "dgl_tgnn.negatives")  # negatives.SamplerBuilder
LOSSES: Registry[Any] = Registry("train.loss", "dgl_tgnn.losses")  # losses.LossFn
FORMATS: Registry[Any] = Registry("--format", "dgl_tgnn.data.formats")  # data.formats.Reader
