"""Modules that load when a node first uses them, not when the pipelines are registered.

Kedro imports every node function to build the pipelines, for every command: ``kedro registry list``, a run
that is refused (missing models, a bad key), ``kedro viz build``'s pipeline load. Importing torch,
transformers, TRL and PEFT there costs seconds a command does not need, so the nodes modules hold their
framework-heavy library modules as :func:`lazy_module`s, imported on the first attribute access, inside the
node that needs them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


class _ModuleOnFirstUse(ModuleType):
    """A stand-in for module ``__name__`` that imports it when one of its names is first read.

    Not ``importlib.util.LazyLoader``: that one puts a half-made module in ``sys.modules``, and torch's import
    (``inspect.getmodule`` reads ``__file__`` of every module there) would start loading the others from inside
    it, in a cycle. This stand-in is never in ``sys.modules``: the real module is imported the usual way.
    """

    def __getattr__(self, name: str):  # called only for names the stand-in lacks: all of the module's
        return getattr(importlib.import_module(self.__name__), name)


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, imported when one of its names is first read (at once where it is imported already).

    Its parent packages are imported now (they are light: ``tracesieve.world``, ``tracesieve.leaf``, ``scipy``);
    a module that is not there fails here, at registration, with Python's own ``ModuleNotFoundError``.
    """
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return _ModuleOnFirstUse(name)
