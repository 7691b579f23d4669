"""The dynamic-binarization exercise of notebook 06 (lvmlib.checks.data) and its reference lvmlib.data.binarize.

Right answers written two ways pass; an unfinished exercise gets the reference back; each typical wrong
answer raises ExerciseError naming the mistake. The reference is tested against the Bernoulli
distribution: its share of ones per pixel against a binomial bound, independence, reproducibility.
"""

import numpy as np
import pytest
import torch

from lvmlib import data
from lvmlib.checks import ExerciseError, ExerciseNotDone
from lvmlib.checks import data as dchecks


def stub(x, generator=None):
    raise NotImplementedError()


def _named(wrong, fragment):
    with pytest.raises(ExerciseError) as info:
        dchecks.check_binarize(wrong)
    assert not isinstance(info.value, ExerciseNotDone)
    assert fragment in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- the reference
def test_binarize_draws_bernoulli_pixels():
    x = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]]).repeat(20000, 1)
    b = data.binarize(x, torch.Generator().manual_seed(0))
    assert b.dtype == x.dtype and b.shape == x.shape
    assert set(torch.unique(b).tolist()) <= {0.0, 1.0}
    share = b.double().mean(0).numpy()
    p = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    assert np.all(np.abs(share - p) <= 5 * np.sqrt(p * (1 - p) / 20000) + 1e-12), share
    # independent pixels: the correlation of two pixels with p = 0.5 is about 0 (sd 1/sqrt(N))
    c = np.corrcoef(b[:, 2].numpy(), data.binarize(x, torch.Generator().manual_seed(1))[:, 2].numpy())[0, 1]
    assert abs(c) < 5 / np.sqrt(20000)
    y = torch.full((20000, 2), 0.5)
    bb = data.binarize(y, torch.Generator().manual_seed(2)).numpy()
    assert abs(np.corrcoef(bb[:, 0], bb[:, 1])[0, 1]) < 5 / np.sqrt(20000)


def test_binarize_is_reproducible_with_a_generator_and_fresh_without():
    x = torch.rand(50, 64)
    a = data.binarize(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, data.binarize(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, data.binarize(x, torch.Generator().manual_seed(4)))
    assert not torch.equal(data.binarize(x), data.binarize(x))


def test_binarize_takes_numpy_and_refuses_bad_input():
    out = data.binarize(np.full((3, 4), 1.0))
    assert torch.equal(out, torch.ones(3, 4))
    with pytest.raises(ValueError, match="x must hold grey levels in"):
        data.binarize(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="x must hold grey levels in"):
        data.binarize(torch.tensor([0.5, float("nan")]))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        data.binarize(torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        data.binarize([0.5])
    with pytest.raises(TypeError, match="generator"):
        data.binarize(torch.rand(3), generator=0)


# ----------------------------------------------------------------------------- the check
def right_uniforms(x, generator=None):
    return (torch.rand(x.shape, generator=generator, device=x.device) < x).to(x.dtype)


def right_bernoulli(x, generator=None):
    return torch.bernoulli(x, generator=generator)


def test_check_accepts_right_answers(capsys):
    for right in (right_uniforms, right_bernoulli, data.binarize):
        assert dchecks.check_binarize(right) is right
        assert dchecks.check_binarize(right, strict=True, seed=1) is None
    assert "✓ binarize" in capsys.readouterr().out


def test_check_not_done(capsys):
    fallback = dchecks.check_binarize(stub)
    assert "not done yet" in capsys.readouterr().out
    assert getattr(fallback, "_lvmlib_substitute_for", None) == "binarize"
    assert set(torch.unique(fallback(torch.rand(4, 4))).tolist()) <= {0.0, 1.0}
    with pytest.raises(ExerciseNotDone):
        dchecks.check_binarize(stub, strict=True)
    with pytest.raises(ExerciseNotDone):
        dchecks.check_binarize(fallback, strict=True)


# the listed mistakes, as the check names them ("This is a known mistake: ...")
BINARIZE_LISTED = {
    "fixed threshold at 0.5": [lambda x, generator=None: (x > 0.5).float(), lambda x, generator=None: torch.round(x)],
    "inverted comparison": [lambda x, generator=None: (torch.rand(x.shape, generator=generator) > x).float(),
                            lambda x, generator=None: torch.bernoulli(1 - x, generator=generator)],
    "gives True/False": lambda x, generator=None: torch.rand(x.shape, generator=generator) < x,
    "one random number per image": lambda x, generator=None: (torch.rand(x.shape[0], 1, generator=generator) < x).float(),
    "shared by all images": lambda x, generator=None: (torch.rand(x.shape[-1], generator=generator) < x).float(),
    "the generator argument is ignored": [lambda x, generator=None: torch.bernoulli(x),
                                          lambda x, generator=None: (torch.rand_like(x) < x).float()],
    "fixed seed inside": lambda x, generator=None: torch.bernoulli(x, generator=torch.Generator().manual_seed(0)),
    "draws into x itself": lambda x, generator=None: x.bernoulli_(generator=generator),
    "no draw was made": lambda x, generator=None: x.clone(),
    "not the grey levels themselves": [
        lambda x, generator=None: torch.bernoulli(x ** 2, generator=generator),
        # pixels read as 0-255: a share of ones far below the grey levels (once misnamed one coin per image)
        lambda x, generator=None: torch.bernoulli(x / 255, generator=generator),
    ],
    "one random number for the whole batch": lambda x, generator=None: (
        torch.rand(1, generator=generator) < x).float(),
}


def binarize_cpu_uniforms(x, generator=None):
    """Right on a CPU, wrong on a GPU: the uniforms are drawn on the CPU whatever x's device is."""
    return (torch.rand(x.shape, generator=generator) < x).to(x.dtype)


# wrong answers the check refuses without naming a listed mistake: (function, what the message says)
BINARIZE_UNLISTED = {
    "a NumPy array": (lambda x, generator=None: torch.bernoulli(x, generator=generator).numpy(), "return a torch tensor"),
    "float64 for float32 grey levels": (lambda x, generator=None: torch.bernoulli(x, generator=generator).double(),
                                        "dtype"),
    "the first image only": (lambda x, generator=None: torch.bernoulli(x, generator=generator)[0], "shape"),
    "no return": (lambda x, generator=None: None, "forget to return"),
    "probabilities clipped to [0.1, 0.9]": (
        lambda x, generator=None: torch.bernoulli(x.clamp(0.1, 0.9), generator=generator), "pixel ("),
    "uniforms drawn without device=": (binarize_cpu_uniforms, "mixed devices"),
    "integers (.long())": (lambda x, generator=None: torch.bernoulli(x, generator=generator).long(), "dtype"),
    "torch.where(u < x, 1, 0) (integers)": (
        lambda x, generator=None: torch.where(torch.rand(x.shape, generator=generator) < x, 1, 0), "dtype"),
    "scaled back to pixel values (* 255)": (lambda x, generator=None: torch.bernoulli(x, generator=generator) * 255,
                                            "values other than 0. and 1."),
    "the images flattened into one vector": (lambda x, generator=None: torch.bernoulli(x.flatten(), generator=generator),
                                             "shape"),
    "the batch's mean image as the probabilities": (
        lambda x, generator=None: torch.bernoulli(x.mean(0, keepdim=True).expand_as(x), generator=generator), "pixel ("),
    "half the batch": (lambda x, generator=None: torch.bernoulli(x[: len(x) // 2], generator=generator), "shape"),
    "bytes (.byte())": (lambda x, generator=None: torch.bernoulli(x, generator=generator).byte(), "dtype"),
    "the first image's grey levels for every image": (
        lambda x, generator=None: torch.bernoulli(x[:1].expand_as(x), generator=generator), "pixel ("),
    "uniforms rounded, x forgotten": (lambda x, generator=None: torch.rand(x.shape, generator=generator).round(),
                                      "pixel ("),
}
WRONG_ANSWERS = {"binarize": BINARIZE_LISTED}
UNLISTED = {"binarize": BINARIZE_UNLISTED}


@pytest.mark.parametrize("wrong, fragment", [(fn, fragment) for fn, fragment in BINARIZE_UNLISTED.values()])
def test_check_says_what_is_wrong_with_an_answer_it_has_no_name_for(wrong, fragment):
    _named(wrong, fragment)


def test_check_reports_a_crash():
    def crashes(x, generator=None):
        return torch.bernoulli(x, generator=generator, out=1)

    _named(crashes, "your function raised")


def test_check_rejects_draws_made_on_the_cpu():
    x = torch.rand(50, 16)
    b = binarize_cpu_uniforms(x, torch.Generator().manual_seed(0))   # right on the CPU ...
    assert b.shape == x.shape and set(b.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ExerciseError, match="mixed devices"):   # ... rejected for ignoring x's device
        dchecks.check_binarize(binarize_cpu_uniforms)


@pytest.mark.parametrize("wrong", [
    lambda x, generator=None: torch.bernoulli(x / x.max(), generator=generator),
    lambda x, generator=None: torch.bernoulli(x / x.amax(-1, keepdim=True), generator=generator),
    lambda x, generator=None: x / x.max(),  # no draw at all: named as such
])
def test_rescaled_grey_levels_are_not_called_one_random_number_per_image(wrong):
    with pytest.raises(ExerciseError) as info:
        dchecks.check_binarize(wrong)
    message = str(info.value)
    assert "one random number per image (" not in message and "shared by all its pixels" not in message, message
    assert "rescal" in message or "returned the grey levels themselves" in message, message
