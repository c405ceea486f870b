"""A test-only evaluation that takes long, to be interrupted.

Used as ``--trainer.callbacks+=sleeping.Sleep`` with ``tests/callbacks`` on PYTHONPATH.
"""

from __future__ import annotations

import time

import lightning as L

from latentzoo.callbacks import PeriodicEvaluation, Stage
from latentzoo.zoo import AutoencoderModule


class Sleep(PeriodicEvaluation):
    """Sleeps ``seconds`` in ``evaluate``, then logs ``{stage}/slept``."""

    def __init__(self, seconds: float = 300.0) -> None:
        super().__init__()
        self.seconds = seconds

    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, float]:
        time.sleep(self.seconds)
        return {"slept": self.seconds}
