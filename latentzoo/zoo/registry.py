"""The zoo's model registry: ``@register_model``, :func:`create_model`, :func:`list_models`.

The registry itself is :data:`latentzoo.zoo.base.MODELS`, an instance of the one registry idiom
of latentzoo (:class:`latentzoo.registry.Registry`); these functions are its model-flavoured
names. Third-party packages add models through the entry-point group ``latentzoo.models``, e.g.
in their pyproject.toml::

    [project.entry-points."latentzoo.models"]
    MyVAE = "my_package.models:MyVAE"

The entry point may name the class itself (it is registered under the entry point's name unless
it registered itself) or a module whose import registers its classes.
"""

from __future__ import annotations

from typing import Any

from latentzoo.zoo.base import MODELS, AutoencoderModule

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODELS",
    "create_model",
    "get_model_class",
    "list_models",
    "load_plugins",
    "register_model",
]

ENTRY_POINT_GROUP = MODELS.group

#: Class decorator that adds a model to the zoo under ``name`` (default: the class name).
register_model = MODELS.register


def load_plugins() -> None:
    """Import every ``latentzoo.models`` entry point once; a broken plugin warns, never crashes."""
    MODELS.load_plugins()


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern``, plugins included."""
    return MODELS.list(pattern)


def get_model_class(name: str) -> type[AutoencoderModule]:
    """The class registered under ``name``; a ``KeyError`` lists what exists."""
    return MODELS.get(name)


def create_model(name: str, **kwargs: Any) -> AutoencoderModule:
    """Build the model registered under ``name`` with its constructor's keyword arguments."""
    return MODELS.get(name)(**kwargs)
