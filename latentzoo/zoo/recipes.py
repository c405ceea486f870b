"""Recipes: one argument that picks a whole set of a model's constants, and old checkpoints.

A zoo model whose authors' code differs from latentzoo's variant takes ``recipe:
Literal["authors", "latentzoo"]``. Each recipe is one frozen dataclass of constants (learning
rates, optimizer, loss weights, network sizes); an explicit argument overrides its entry, and
the arguments left at None mean "the recipe's", so the choice is read from one table, never from
if-chains on the recipe's name. Which recipe is the default is decided by measurement (the
``paper-recipes`` and ``lmgae-grid`` suites); each model's documentation page holds the table
"paper / authors' code / latentzoo".

Checkpoints written before a model took ``recipe`` (or another argument that changes what its
old arguments build) lack it, and its default now builds another model. :class:`LegacyRecipes`
reads such a checkpoint as what it is: its :attr:`~LegacyRecipes.legacy_hparams` name the
arguments the old checkpoints lack and the values that rebuild them; on loading (Lightning's
``on_load_checkpoint``, called after ``__init__`` and before the weights and optimizers are
restored) the model switches to those values, and its hyper-parameters record them, so the
checkpoint it writes next says which recipe it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar, Literal, TypeVar, cast

import lightning as L
from typing_extensions import override

__all__ = ["LegacyRecipes", "Recipe", "with_overrides"]

Recipe = Literal["authors", "latentzoo"]
"""The recipes a zoo model may offer: its authors' published code, or latentzoo's variant."""

T = TypeVar("T")


def with_overrides(recipe: T, **overrides: Any) -> T:
    """``recipe`` (a frozen dataclass) with every override that is not None put in."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return cast(T, dataclasses.replace(recipe, **given))  # type: ignore[type-var]


class LegacyRecipes(L.LightningModule):
    """Mixin of the models whose new arguments would rebuild an old checkpoint differently.

    Subclasses set :attr:`legacy_hparams` (each an attribute of the model) and implement
    :meth:`apply_recipe`, which (re)applies them: the constants they select and the networks
    whose shapes depend on them.
    """

    legacy_hparams: ClassVar[Mapping[str, Any]] = {}
    """Arguments that checkpoints written before they existed lack, and the values that
    rebuild the model those checkpoints hold."""

    def apply_recipe(self) -> None:
        """Resolve the constants the model's choices select and build what depends on them."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply_recipe")

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("hyper_parameters") or {}
        legacy = {k: v for k, v in self.legacy_hparams.items() if k not in saved}
        if not legacy or all(self.hparams.get(k) == v for k, v in legacy.items()):
            return
        for key, value in legacy.items():
            setattr(self, key, value)
        self.apply_recipe()
        for name in ("_hparams", "_hparams_initial"):
            hparams = cast(MutableMapping[str, Any], getattr(self, name))
            hparams.update(legacy)
