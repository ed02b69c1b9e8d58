"""Whether ``module:callable`` targets (``run``, hooks) can be used: importable and callable.

A registry of 10,000 processes names a handful of modules, so ``Targets`` imports each distinct
module once per validation — also one that fails to import, which Python does not remember
(``sys.modules`` holds only modules that imported) and would otherwise run again for every
process naming it — and looks each distinct target up once. A module that does not import gives
the same message for every target in it (``cannot import module 'jobs.etl': …``), so that the
processes naming it are said as one grouped problem.

Imports run as ``python -m`` from the working directory would see them: the working directory is
on ``sys.path`` while they run (``workflows.jobs.etl`` from the repository root).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

__all__ = ["Targets"]


class Targets:
    """The import checks of one validation: each module imported once, each target looked up
    once. ``imports`` counts the modules it tried to import (each distinct one, once)."""

    __slots__ = ("_modules", "_targets", "imports")

    def __init__(self) -> None:
        self._modules: dict[str, ModuleType | str] = {}  # module name -> module, or why not
        self._targets: dict[str, str | None] = {}
        self.imports = 0

    def problem(self, target: str) -> str | None:
        """Why ``target`` cannot be used, or ``None`` if it imports and is callable."""
        try:
            return self._targets[target]
        except KeyError:
            found = self._targets[target] = self._check(target)
            return found

    def _check(self, target: str) -> str | None:
        module_name, _, attributes = target.partition(":")
        module = self._module(module_name)
        if isinstance(module, str):
            return module
        obj: Any = module
        for name in attributes.split("."):
            try:
                obj = getattr(obj, name)
            except AttributeError as exc:
                return f"cannot import {target!r}: AttributeError: {exc}"
        if not callable(obj):
            return f"{target!r} is not callable (it is a {type(obj).__name__})"
        return None

    def _module(self, name: str) -> ModuleType | str:
        known = self._modules.get(name)
        if known is not None:
            return known
        self.imports += 1
        try:
            with _cwd_on_sys_path():
                module: ModuleType | str = importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # a user module may raise anything while importing
            module = f"cannot import module {name!r}: {type(exc).__name__}: {exc}"
        self._modules[name] = module
        return module


@contextmanager
def _cwd_on_sys_path() -> Iterator[None]:
    """Import as ``python -m`` from here would: ``workflows.jobs.etl`` from the repository root."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
