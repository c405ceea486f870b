"""One registry idiom for every kind of plug-in: models, latent densities, extractors, metrics.

In the manner of timm: a decorator puts a class (or function) in a :class:`Registry` when its
module is imported; ``list(pattern)`` lists the names, ``get(name)`` returns the entry,
``create(name, **kwargs)`` builds one. Third-party packages add entries through an entry-point
group (``latentzoo.models``, ``latentzoo.densities``, ``latentzoo.extractors``,
``latentzoo.metrics``), e.g. in their pyproject.toml::

    [project.entry-points."latentzoo.densities"]
    my_flow = "my_package.densities:MyFlow"

An entry point may name the object itself (registered under the entry point's name unless it
registered itself) or a module whose import registers its objects. A single file needs no
package: ``LATENTZOO_PLUGINS=my_metric,my_sampler`` (module names, comma-separated, importable
from ``PYTHONPATH``) imports those modules on any registry's first use. A broken plugin warns and
is skipped: a third party's import error never takes the command line down.

:meth:`Registry.resolve` is the one place a *name* becomes a class: a registered name, or a class
path (``package.module.Class``). A class path is looked up among the modules already imported;
only with ``allow_import=True`` (a class path the user typed in a config or suite file) is its
module imported. Opening a checkpoint resolves the class it records without importing anything
it names, as Lightning's own loader does.
"""

from __future__ import annotations

import builtins
import difflib
import fnmatch
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

__all__ = ["PLUGINS_ENV", "Registry", "RegistryError", "import_plugin_modules", "qualname"]

PLUGINS_ENV = "LATENTZOO_PLUGINS"
_imported_env_plugins: set[str] = set()


def import_plugin_modules() -> None:
    """Import the modules named in ``$LATENTZOO_PLUGINS`` (each once); a failure warns."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        if name in _imported_env_plugins:
            continue
        _imported_env_plugins.add(name)
        try:
            importlib.import_module(name)
        except Exception as err:  # a user's file must not take the command line down
            warnings.warn(f"{PLUGINS_ENV}: module {name!r} failed to import: {err!r}", stacklevel=2)


T = TypeVar("T")


class RegistryError(KeyError):
    """A name or class path that resolves to nothing this registry accepts; the message says
    what exists. A ``KeyError`` for ``get``'s sake, with a readable ``str``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def qualname(obj: Any) -> str:
    """``module.QualName`` of a class or function: how configs and checkpoints name it."""
    return f"{obj.__module__}.{obj.__qualname__}"


class Registry(Generic[T]):
    """Name -> object, filled by :meth:`register` at import and by entry points on first use.

    Args:
        kind: What the entries are, for messages (``"model"``, ``"latent density"``).
        group: The entry-point group plugins use.
        check: Raises ``TypeError`` for an object this registry must not hold (a class that
            is not a subclass of the kind's base, say); called at registration and resolution.
    """

    def __init__(self, kind: str, group: str, check: Callable[[Any], None] | None = None) -> None:
        self.kind, self.group = kind, group
        self._check = check
        self._entries: dict[str, T] = {}
        self._plugins_loaded = False

    # -- filling -----------------------------------------------------------------------------
    def register(self, obj: T | None = None, *, name: str | None = None) -> Any:
        """Decorator that adds ``obj`` under ``name`` (default: its ``__name__``).

        Registering a second object under a taken name warns and replaces the first, so a plugin
        can deliberately shadow a built-in entry, and an accidental clash is visible.
        """

        def decorator(entry: T) -> T:
            if self._check is not None:
                self._check(entry)
            key = name or entry.__name__  # type: ignore[attr-defined]
            previous = self._entries.get(key)
            if previous is not None and previous is not entry:
                warnings.warn(
                    f"latentzoo {self.kind} {key!r} is registered twice: {qualname(previous)} is "
                    f"replaced by {qualname(entry)}",
                    stacklevel=3,
                )
            self._entries[key] = entry
            return entry

        return decorator if obj is None else decorator(obj)

    def load_plugins(self) -> None:
        """Import this registry's entry points once (and the modules of ``$LATENTZOO_PLUGINS``);
        a broken plugin warns, never crashes."""
        import_plugin_modules()
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as err:  # a third party's import error must not take the CLI down
                warnings.warn(
                    f"latentzoo plugin {ep.name!r} ({ep.value}) failed to load: {err!r}",
                    stacklevel=2,
                )
                continue
            if _is_module(obj) or obj in self._entries.values():
                continue  # a module registers its entries when imported
            try:
                self.register(obj, name=ep.name)
            except TypeError as err:
                warnings.warn(f"latentzoo plugin {ep.name!r}: {err}", stacklevel=2)

    @contextmanager
    def isolated(self, reload_plugins: bool = False) -> Iterator[Registry[T]]:
        """A block whose registrations are undone after it (tests register throw-away entries).

        Args:
            reload_plugins: Load the entry points again inside the block (a test that installs
                a plugin distribution).
        """
        saved = dict(self._entries), self._plugins_loaded
        if reload_plugins:
            self._plugins_loaded = False
        try:
            yield self
        finally:
            self._entries, self._plugins_loaded = saved

    # -- reading -----------------------------------------------------------------------------
    def list(self, pattern: str = "*") -> builtins.list[str]:
        """Sorted names matching a shell-style ``pattern``, plugins included."""
        self.load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def names(self) -> builtins.list[str]:
        """Every name, in registration order (built-ins first, then plugins)."""
        self.load_plugins()
        return list(self._entries)

    def items(self) -> builtins.list[tuple[str, T]]:
        """(name, entry) pairs in name order, plugins included."""
        return [(n, self._entries[n]) for n in self.list()]

    def __iter__(self) -> Iterator[str]:
        """The registered names, sorted."""
        return iter(self.list())

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._entries

    def get(self, name: str) -> T:
        """The entry registered under ``name``; a :class:`RegistryError` lists what exists."""
        self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown(name)) from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build the (class) entry registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)  # type: ignore[operator]

    def name_of(self, obj: Any) -> str | None:
        """The name ``obj`` (an entry, or an instance of a class entry) is registered under."""
        self.load_plugins()
        for name, entry in self._entries.items():
            if obj is entry or (isinstance(entry, type) and type(obj) is entry):
                return name
        return None

    def unknown(self, name: str) -> str:
        """One sentence: no such entry, the closest names, and every name."""
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        return f"no latentzoo {self.kind} named {name!r}; {hint}registered: {', '.join(names)}"

    def resolve(self, name: str, *, allow_import: bool = False) -> T:
        """The entry a name or class path stands for.

        Args:
            name: A registered name (``"gmm"``), a registered class's name
                (``"GaussianMixture"``) or a class path (``"latentzoo.zoo.VAE"``,
                ``"my_package.models.MyVAE"``).
            allow_import: Import a class path's module if it is not imported yet (for class
                paths the user typed); without it only imported modules are searched (for
                class paths a file records).

        Raises:
            RegistryError: Nothing by that name, or the object is not of this registry's kind.
        """
        self.load_plugins()
        if name in self._entries:
            return self._entries[name]
        by_class = [e for e in self._entries.values() if getattr(e, "__name__", None) == name]
        if len(by_class) == 1:  # a class name, as jsonargparse and old configs write them
            return by_class[0]
        module_name, _, attr = name.rpartition(".")
        if not module_name:
            raise RegistryError(self.unknown(name))
        module = sys.modules.get(module_name)
        if module is None and allow_import:
            try:
                module = importlib.import_module(module_name)
            except ImportError as err:
                raise RegistryError(
                    f"class_path {name!r} does not resolve to a class: cannot import "
                    f"{module_name} ({err})"
                ) from None
        found = getattr(module, attr, None) if module is not None else None
        if found is None and module is not None:
            raise RegistryError(
                f"class_path {name!r} does not resolve to a class: {module_name} has no {attr}"
            )
        if found is None:
            raise RegistryError(
                f"{name} is neither a registered latentzoo {self.kind} nor a class of an "
                f"imported module; import the module that defines it first"
            )
        if self._check is not None:
            try:
                self._check(found)
            except TypeError as err:
                raise RegistryError(f"{name}: {err}") from None
        return found


def _is_module(obj: Any) -> bool:
    return type(obj).__name__ == "module"


def subclass_check(base: Callable[[], type], kind: str) -> Callable[[Any], None]:
    """A registry ``check`` accepting subclasses of ``base()`` (called late: no import cycle)."""

    def check(obj: Any) -> None:
        cls = base()
        if not (isinstance(obj, type) and issubclass(obj, cls)):
            raise TypeError(f"{obj!r} is not a {kind} ({qualname(cls)} subclass)")

    return check
