from __future__ import annotations

import re

import pytest
import torch
from testutils import ALL_SHAPES

from latentzoo.zoo import nets


@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_encoder_decoder_shapes(shape: tuple[int, ...]) -> None:
    enc = nets.build_encoder(shape, out_dim=10, width=8)
    dec = nets.build_decoder(5, shape, out_channels=2, width=8)
    x = torch.rand(3, *shape)
    assert enc(x).shape == (3, 10)
    out = dec(torch.randn(3, 5))
    assert out.shape == (3, 2 * shape[0], *shape[1:])
    mean, _logvar = out.chunk(2, dim=1)
    assert mean.shape == x.shape


def test_smallest_feature_map_is_as_documented() -> None:
    enc = nets.ConvEncoder((1, 28, 28), out_dim=4, width=8)
    assert enc.feature_dim == 16 * 7 * 7  # two stride-2 layers: 28 -> 14 -> 7, channels 8 -> 16
    enc = nets.ConvEncoder((3, 64, 64), out_dim=4, width=8)
    assert enc.feature_dim == 64 * 4 * 4


@pytest.mark.parametrize("shape", [(1, 30, 30), (3, 32, 28), (1, 28), (0,), (2, 3, 64, 64)])
def test_unsupported_shape_fails_at_setup_naming_it(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=re.escape(f"cannot take data of shape {shape}")):
        nets.build_encoder(shape, out_dim=4)
    with pytest.raises(ValueError, match="square images"):
        nets.build_decoder(4, shape, out_channels=1)
