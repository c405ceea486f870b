"""The synthetic set: seeded, standardised, and of the latent dimension it claims."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from testutils import run_python
from torch.func import jacrev

from latentzoo.datamodules import Synthetic
from latentzoo.datamodules.synthetic import random_mlp


def _small(**kw) -> Synthetic:
    args = {"latent_dim": 4, "data_dim": 32, "num_train": 600, "num_test": 200, "val_size": 100}
    return Synthetic(**{**args, **kw})


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = _small(seed=3), _small(seed=3), _small(seed=4)
    for dm in (a, b, c):
        dm.setup("fit")
    assert a.train_set is not None and b.train_set is not None and c.train_set is not None
    torch.testing.assert_close(a.train_set.x, b.train_set.x)
    assert not torch.allclose(a.train_set.x, c.train_set.x)


def test_splits_have_the_requested_sizes_and_shapes() -> None:
    dm = _small()
    dm.setup()
    assert dm.data_shape == (32,)
    assert dm.train_set is not None and dm.val_set is not None and dm.test_set is not None
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (500, 100, 200)
    x, z = next(iter(dm.train_dataloader()))
    assert x.shape == (128, 32) and x.dtype == torch.float32
    assert z.shape == (128, 4)


def test_training_split_is_standardised_per_coordinate() -> None:
    dm = _small()
    x, _ = dm.load_split(train=True)
    torch.testing.assert_close(x.mean(0), torch.zeros(32), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std(0), torch.ones(32), atol=1e-4, rtol=0)


@pytest.mark.parametrize("n", [2, 5])
def test_data_manifold_has_the_true_latent_dimension(n: int) -> None:
    """The Jacobian of f has rank n at every point: the data are n-dimensional in R^d."""
    f = random_mlp(n, 40, 128, torch.Generator().manual_seed(0)).double()
    for z in torch.randn(5, n, dtype=torch.float64):
        jac = jacrev(f)(z)  # (d, n)
        assert torch.linalg.matrix_rank(jac).item() == n
    # and the data, seen globally, are not confined to an n-dimensional linear subspace
    x = f(torch.randn(2000, n, dtype=torch.float64))
    s = torch.linalg.svdvals(x - x.mean(0))
    assert (s > 1e-6 * s[0]).sum() > n


def test_labels_are_the_latent_codes_that_made_the_data() -> None:
    dm = _small()
    x, z = dm.load_split(train=False)
    f = random_mlp(4, 32, 128, torch.Generator().manual_seed(0))
    raw = f(z)
    # standardisation is affine per coordinate, so correlation with f(z) is perfect
    for j in range(3):
        r = torch.corrcoef(torch.stack([raw[:, j], x[:, j]]))[0, 1]
        assert r > 0.9999


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"num_train": 0}, "num_train"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_raise(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _small(**kw)


def test_val_size_larger_than_the_pool_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="val_size=600 leaves no training data: num_train=600"):
        _small(val_size=600)


def test_cli_refuses_num_train_below_the_default_val_size_in_one_line(tmp_path: Path) -> None:
    """As a new user tried it: 4,000 training samples, the default val_size of 5,000."""
    proc = run_python("-m", "latentzoo", "fit", "--data", "Synthetic", "--data.num_train", "4000",
                      cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "--data Synthetic: val_size=5000 leaves no training data: num_train=4000" in error
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2  # + seed
    assert not (tmp_path / "runs").exists()  # refused before anything was written
