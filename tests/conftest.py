"""Fixtures shared across test folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

from latentzoo.metrics import extractors


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch-fidelity's InceptionV3 with random weights, saved as its weights file would be."""
    path = tmp_path_factory.mktemp("weights") / extractors.INCEPTION_WEIGHTS_NAME
    with pytest.MonkeyPatch.context() as mp:  # build the architecture without downloading
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
        mp.setattr(
            tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None
        )
        torch.manual_seed(0)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)
    return path
