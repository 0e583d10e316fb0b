"""Batch augmentation: exact ops, seeded, training only, resume-exact."""

from __future__ import annotations

import json

import pytest
import torch

import trainlab
from trainlab.data import DATASETS
from trainlab.data import augment as A
from trainlab.engine import Technique
from trainlab.errors import RecipeError


def gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(DATASETS.get("cifar10_sample").builder(None).X[:64])


def test_flips_are_exact_mirrors_chosen_with_probability_p(images):
    out = A.hflip(images, 0.5, gen())
    flipped = [(o == x.flip(-1)).all().item() for o, x in zip(out, images, strict=True)]
    kept = [(o == x).all().item() for o, x in zip(out, images, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 20 <= sum(flipped) <= 44
    assert torch.equal(A.vflip(images, 1.0, gen()), images.flip(-2))
    assert torch.equal(A.hflip(images, 0.0, gen()), images)


def test_random_crop_is_an_integer_shift_inside_the_padding(images):
    out = A.random_crop(images, 4, gen(1))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for o, p in zip(out[:8], padded[:8], strict=True):
        hits = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if torch.equal(p[:, dy : dy + 32, dx : dx + 32], o)
        ]
        assert hits  # every output is one window of the padded image
    assert not torch.equal(out, images)


def test_affine_identity_and_rotation_by_180(images):
    same = A.affine(images, gen(), degrees=0, translate=0, scale=(1, 1))
    assert torch.allclose(same, images, atol=1e-5)
    # ±180° with probability ~0 of being exactly 180, so check a forced angle instead
    theta = torch.tensor([[[-1.0, 0, 0], [0, -1.0, 0]]]).repeat(len(images), 1, 1)
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    rotated = torch.nn.functional.grid_sample(images, grid, align_corners=False)
    assert torch.allclose(rotated, images.flip(-1).flip(-2), atol=1e-5)


def test_color_jitter_changes_brightness_within_bounds(images):
    out = A.color_jitter(images, gen(), brightness=0.2)
    ratio = out.sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert ((ratio >= 0.8 - 1e-5) & (ratio <= 1.2 + 1e-5)).all() and ratio.std() > 0.02
    gray = A.color_jitter(images, gen(), saturation=0.999999)
    assert gray.shape == images.shape


def test_cutout_and_erasing_zero_a_rectangle(images):
    out = A.cutout(images, 8, gen())
    zeroed = (out == 0).all(1) & (images != 0).any(1)
    areas = zeroed.sum((1, 2))
    assert (areas <= 64).all() and (areas > 0).float().mean() > 0.9
    erased = A.random_erasing(images, gen(), p=1.0, scale=(0.25, 0.25), ratio=(1, 1))
    assert ((erased == 0).all(1).sum((1, 2)) >= 256).all()  # a 16x16 square at least


def test_noise_spares_index_columns_and_token_dropout_spares_padding():
    x = torch.zeros(1000, 5)
    noisy = A.gaussian_noise(x, 0.1, gen(), columns=3)
    assert abs(noisy[:, :3].std().item() - 0.1) < 0.01 and (noisy[:, 3:] == 0).all()
    ids = torch.tensor([[5, 6, 7, 0, 0]] * 2000)
    out = A.token_dropout(ids, 0.25, gen())
    assert (out[:, 3:] == 0).all()
    assert abs((out[:, :3] == 1).float().mean().item() - 0.25) < 0.02


def test_technique_rejects_the_wrong_kind_of_data(breast_cancer_recipe, tmp_path):
    breast_cancer_recipe["techniques"] = ["hflip"]
    with pytest.raises(RecipeError, match=r"hflip: needs image batches \(N, C, H, W\)"):
        trainlab.train(breast_cancer_recipe, out=tmp_path / "r")


class Record(Technique):
    """Keeps a copy of the first training batch of each epoch (after augmentation)."""

    order = 0

    def __init__(self):
        self.seen = []

    def on_batch_start(self, state):
        if state.batch_index == 0:
            self.seen.append(state.batch[0].clone())


CIFAR = {
    "name": "cifar-aug",
    "data": {"dataset": "cifar10_sample"},
    "model": {"name": "cnn", "channels": [8], "dense": [], "head": "gap"},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.003},
    "techniques": [{"name": "random_crop", "padding": 2}, "hflip", "cutout"],
}


def test_augmented_training_is_seeded_training_only_and_resume_exact(tmp_path):
    rec_a, rec_b = Record(), Record()
    a = trainlab.train(CIFAR, out=tmp_path / "a", extra_techniques=[rec_a])
    b = trainlab.train(CIFAR, out=tmp_path / "b", extra_techniques=[rec_b])
    assert all(torch.equal(x, y) for x, y in zip(rec_a.seen, rec_b.seen, strict=True))
    assert not torch.equal(rec_a.seen[0], rec_a.seen[1])
    assert a.metrics == b.metrics
    # evaluation sees the raw images: the stored test metrics equal a plain re-evaluation
    reeval = trainlab.load(a.run_dir).evaluate("test")
    assert reeval["test_accuracy"] == a.metrics["test_accuracy"]
    assert reeval["test_loss"] == pytest.approx(a.metrics["test_loss"], rel=1e-5)

    class Crash(Technique):
        def on_batch_end(self, state):
            if state.epoch == 1 and state.batch_index == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainlab.train(CIFAR, out=tmp_path / "c", extra_techniques=[Crash()])
    resumed = trainlab.train(CIFAR, out=tmp_path / "c")
    assert resumed.metrics == a.metrics
    hist = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in resumed.history]
    assert hist == [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in a.history]
    assert json.loads((tmp_path / "c" / "run.json").read_text())["status"] == "completed"


def test_text_end_to_end_with_token_dropout_and_raw_string_prediction(tmp_path):
    recipe = {
        "name": "rt",
        "data": {"dataset": "rt_polarity", "preprocessing": {"text": {"max_len": 30}}},
        "model": {"name": "text_cnn", "embedding_dim": 16, "filters": 16, "dropout": 0.2},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.01},
        "techniques": [{"name": "token_dropout", "p": 0.1}],
    }
    run = trainlab.train(recipe, out=tmp_path / "rt")
    assert run.metrics["test_accuracy"] >= 0.66  # chance 0.50; BoW logistic regression 0.75
    vocab = json.loads((run.run_dir / "preprocess.json").read_text())["vocab"]["itos"]
    assert vocab[:2] == ["<pad>", "<unk>"] and len(vocab) > 15_000
    model = trainlab.load(run.run_dir)
    proba = model.predict_proba(["a moving , beautifully acted and wise film", "dull and lifeless"])
    assert proba.shape == (2, 2) and proba[0, 1] > proba[1, 1]


def test_augmentation_draws_follow_the_runs_seed(images):
    """Without its own `seed`, an augmentation's randomness derives from `train.seed`."""
    from trainlab.catalog import TECHNIQUES
    from trainlab.engine.state import State

    entry = TECHNIQUES.get("hflip")
    flip = entry.builder(entry.params())

    def draws(seed: int) -> torch.Tensor:
        state = State(None, None, None, torch.device("cpu"), 1, seed=seed)
        return A.hflip(images, 0.5, flip.generator(state, images.device))

    assert torch.equal(draws(1), draws(1))
    assert not torch.equal(draws(1), draws(2))
