"""The zoo's registry: model name -> LightningModule class, filled by a decorator at import.

In the manner of timm: ``@register_model`` on a class puts it in one global table;
:func:`create_model` builds one by name and :func:`list_models` lists them. Third-party packages
add models through the entry-point group ``latentzoo.models``, e.g. in their pyproject.toml::

    [project.entry-points."latentzoo.models"]
    MyVAE = "my_package.models:MyVAE"

The entry point may name the class itself (it is registered under the entry point's name unless
it registered itself) or a module whose import registers its classes.
"""

from __future__ import annotations

import fnmatch
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from latentzoo.zoo.base import AutoencoderModule

__all__ = [
    "ENTRY_POINT_GROUP",
    "create_model",
    "get_model_class",
    "list_models",
    "load_plugins",
    "register_model",
]

ENTRY_POINT_GROUP = "latentzoo.models"

_MODELS: dict[str, type[AutoencoderModule]] = {}
_PLUGINS_LOADED = False

T = TypeVar("T", bound="type[AutoencoderModule]")


def register_model(cls: T | None = None, *, name: str | None = None) -> Any:
    """Class decorator that adds a model to the zoo under ``name`` (default: the class name).

    Registering a second class under a taken name warns and replaces the first, so a plugin can
    deliberately shadow a built-in model, and an accidental clash is visible.
    """

    def decorator(model_cls: T) -> T:
        key = name or model_cls.__name__
        previous = _MODELS.get(key)
        if previous is not None and previous is not model_cls:
            warnings.warn(
                f"latentzoo model {key!r} is registered twice: {_qualname(previous)} is replaced "
                f"by {_qualname(model_cls)}",
                stacklevel=2,
            )
        _MODELS[key] = model_cls
        return model_cls

    return decorator if cls is None else decorator(cls)


def load_plugins() -> None:
    """Import every ``latentzoo.models`` entry point once; a broken plugin warns, never crashes."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from latentzoo.zoo.base import AutoencoderModule

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as err:  # a third party's import error must not take the CLI down
            warnings.warn(
                f"latentzoo plugin {ep.name!r} ({ep.value}) failed to load: {err!r}", stacklevel=2
            )
            continue
        is_model = isinstance(obj, type) and issubclass(obj, AutoencoderModule)
        if is_model and obj not in _MODELS.values():
            register_model(obj, name=ep.name)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern``, plugins included."""
    load_plugins()
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def get_model_class(name: str) -> type[AutoencoderModule]:
    """The class registered under ``name``; a ``KeyError`` lists what exists."""
    load_plugins()
    try:
        return _MODELS[name]
    except KeyError:
        raise KeyError(
            f"no latentzoo model named {name!r}; registered models: {', '.join(sorted(_MODELS))}"
        ) from None


def create_model(name: str, **kwargs: Any) -> AutoencoderModule:
    """Build the model registered under ``name`` with its constructor's keyword arguments."""
    return get_model_class(name)(**kwargs)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
