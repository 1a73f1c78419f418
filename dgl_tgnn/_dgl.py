"""The one module that imports DGL.

PyPI's newest DGL (2.1.0) was built for torch <= 2.2 and an old setuptools. Two
things stop ``import dgl`` with a current torch, and both are bridged here, before
the import, without touching site-packages:

* ``dgl.graphbolt`` loads a native library built per torch version and raises when
  none exists for the running torch. DGL's core (graphs, blocks, message passing,
  ``edge_softmax``, ``dgl.nn``) does not use it, so its absence is tolerated.
* ``from setuptools.extern.packaging import version`` is gone from setuptools >= 71;
  ``packaging`` itself is aliased under that name when needed.

A DGL that imports cleanly (a build matching the running torch, e.g. a CUDA DGL)
is imported untouched. ``DGLBACKEND`` is set to ``pytorch`` when unset, so that DGL
neither prints its "backend not selected" notice (inside a progress bar) nor writes
``~/.dgl/config.json``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from types import ModuleType

import torch

_GRAPHBOLT_ERRORS = ("Cannot find DGL C++ graphbolt library", "Cannot load Graphbolt C++ library")


def graphbolt_library_path(dgl_dir: str, torch_version: str) -> str:
    """Path of the graphbolt library DGL looks for under ``dgl_dir`` for ``torch_version``."""
    version = torch_version.split("+", maxsplit=1)[0]
    return os.path.join(dgl_dir, "graphbolt", f"libgraphbolt_pytorch_{version}.so")


def needs_graphbolt_bridge(dgl_dir: str, torch_version: str) -> bool:
    """True when DGL ships no graphbolt library for ``torch_version``."""
    return not os.path.exists(graphbolt_library_path(dgl_dir, torch_version))


def needs_packaging_alias() -> bool:
    """True when ``setuptools.extern.packaging`` cannot be imported."""
    try:
        return importlib.util.find_spec("setuptools.extern.packaging") is None
    except ModuleNotFoundError:
        return True


class _OptionalGraphboltLoader(importlib.abc.Loader):
    """Runs ``dgl/graphbolt/__init__.py`` and tolerates only its native-library failure."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._inner.exec_module(module)
        except (FileNotFoundError, ImportError) as err:
            if not str(err).startswith(_GRAPHBOLT_ERRORS):
                raise


class _OptionalGraphboltFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201 (importlib protocol)
        if fullname != "dgl.graphbolt":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _OptionalGraphboltLoader(spec.loader)
        return spec


def _import_dgl() -> ModuleType:
    if "dgl" in sys.modules:
        return sys.modules["dgl"]
    spec = importlib.util.find_spec("dgl")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("DGL is not installed: pip install dgl==2.1.0 (see README.md)")
    dgl_dir = list(spec.submodule_search_locations)[0]
    os.environ.setdefault("DGLBACKEND", "pytorch")

    if needs_packaging_alias():
        import packaging
        import packaging.version

        sys.modules.setdefault("setuptools.extern.packaging", packaging)
        sys.modules.setdefault("setuptools.extern.packaging.version", packaging.version)

    finder = _OptionalGraphboltFinder() if needs_graphbolt_bridge(dgl_dir, torch.__version__) else None
    if finder is not None:
        sys.meta_path.insert(0, finder)
    try:
        with warnings.catch_warnings():
            # torchdata 0.9 warns on import that its datapipes are deprecated; DGL imports them.
            warnings.filterwarnings("ignore", message="(?s).*datapipes", category=UserWarning)
            import dgl
    finally:
        if finder is not None:
            sys.meta_path.remove(finder)
    return dgl


dgl = _import_dgl()
bridged = needs_graphbolt_bridge(os.path.dirname(dgl.__file__), torch.__version__)
