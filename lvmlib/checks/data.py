"""Checks for the exercises on data (notebook 06): dynamic binarization.

``check_binarize`` checks ``binarize(x, generator=None)``, a fresh Bernoulli draw of every
pixel with its grey level as the probability (reference: :func:`lvmlib.data.binarize`). Two
correct answers (``torch.bernoulli`` or comparing uniforms with x) draw different images from
one seed, so the check tests what must hold for any correct answer instead of comparing
draws: 0./1. floats of x's shape; x unchanged; the same images from two generators seeded
alike and different images from another seed; over many draws each pixel is 1 in a share x
of them (within five binomial standard deviations); pixels drawn independently of each other;
and, with x on a second device (CUDA where present, else PyTorch's ``meta`` device), the draws
made on x's device (``torch.rand(x.shape)`` without ``device=`` passes on a CPU and stops on a GPU).

Usage in a notebook::

    from lvmlib import checks
    binarize = checks.data.check_binarize(binarize)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lvmlib.checks._core import Case, ExerciseError, ExerciseNotDone, _mark_reference, check_follows_device
from lvmlib.data import binarize as _binarize

__all__ = ["check_binarize"]

N_DRAWS = 2000  # draws per pixel for the share of ones


def _grey_levels(seed: int) -> torch.Tensor:
    """(8, 16) grey levels: uniform ones, with exact 0s, exact 1s and a row of 0.5."""
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.uniform(size=(8, 16)), dtype=torch.float32)
    x[0, :4] = 0.0
    x[1, :4] = 1.0
    x[2] = 0.5
    return x


# the mistakes the check names ("This is a known mistake: ..."), each told apart by the test that finds it
MISTAKES = {
    "bernoulli_in_place":
        "x.bernoulli_() draws into x itself and destroys the grey levels; the caller's x must stay as it "
        "was: make the draw into a new tensor",
    "booleans":
        "a comparison such as u < x gives True/False; the likelihood needs floats 0. and 1.: convert with "
        ".to(x.dtype) (or .float())",
    "grey_levels_returned":
        "no draw was made: each pixel must become 0. or 1.",
    "static":
        "a fixed threshold at 0.5 gives one binary image forever (so does static binarization, one random "
        "draw made once). Dynamic binarization draws a new one every time, pixel d being 1 with probability "
        "x_d",
    "fixed_seed":
        "the draw does not come from the generator passed in (a fixed seed inside the function?)",
    "generator_ignored":
        "the generator argument is ignored (torch.rand_like and torch.bernoulli(x) without generator= use the"
        " global random state): pass generator=generator, e.g. torch.rand(x.shape, generator=generator, "
        "device=x.device)",
    "rescaled":
        "the grey levels were changed before the draw, e.g. rescaled with x / x.max() (which makes 0.5 into 1"
        " when no pixel is brighter): a deterministic rescaling of the probabilities, not one random number "
        "per image. Draw each pixel with its grey level as it is, unchanged",
    "one_per_image":
        "one random number per image (e.g. torch.rand(len(x), 1)) is shared by all its pixels; draw one per "
        "pixel: torch.rand(x.shape, generator=generator, device=x.device)",
    "shared_by_images":
        "one random number per pixel shared by all images (e.g. torch.rand(x.shape[-1])); draw one per pixel "
        "of each image: torch.rand(x.shape, generator=generator, device=x.device)",
    "one_for_all":
        "one random number for the whole batch (e.g. torch.rand(1)) decides every pixel of every image at once; "
        "each pixel of each image needs a random number of its own",
    "not_grey_levels":
        "the probabilities are not the grey levels themselves: pixel d must be 1 with probability x_d",
    "inverted":
        "inverted comparison: u > x (or torch.bernoulli(1 - x)) makes dark pixels white; a pixel is 1 when u "
        "< x, with probability x",
}


def check_binarize(binarize: Callable, *, strict: bool = False, seed: int = 0, quiet: bool = False) -> Callable:
    """Check ``binarize(x, generator=None) -> (..., D)`` of 0./1.: pixel d is 1 with probability x_d.

    Returns the learner's function when it is right, lvmlib's reference while the exercise is
    not done (None when ``strict``); raises :class:`ExerciseError` naming the mistake otherwise.
    """
    name = "binarize"
    if not callable(binarize):
        raise TypeError(f"{name}: expected the function you wrote, got {binarize!r}")
    if getattr(binarize, "_lvmlib_substitute_for", None) is not None:
        if strict:
            raise ExerciseNotDone(f"{name}: not done yet (the reference implementation stands in for it).")
        return binarize

    def fail(problem: str, mistake: str | None = None):
        lines = [f"{name}: not right yet — {problem}."]
        if mistake:
            lines.append(f"  This is a known mistake: {mistake}")
        lines.append("  Hint: every call must draw each pixel afresh, 1 with probability its grey level, from the "
                     "generator passed in, on x's device.")
        raise ExerciseError("\n".join(lines))

    def call(x: torch.Tensor, gen_seed: int):
        mine = x.clone()
        try:
            out = binarize(mine, torch.Generator().manual_seed(gen_seed))
        except (NotImplementedError, ExerciseError):
            raise
        except Exception as err:
            raise ExerciseError(f"{name}: your function raised {type(err).__name__}: {err}\n"
                                f"  on x of shape {tuple(x.shape)} and a seeded torch.Generator") from err
        if not torch.equal(mine, x):
            fail("it changed x in place", MISTAKES["bernoulli_in_place"])
        return out

    x = _grey_levels(seed)
    try:
        b = call(x, seed)
    except NotImplementedError:
        if strict:
            raise ExerciseNotDone(f"{name}: not done yet (the function still raises NotImplementedError).")
        if not quiet:
            print(f"… {name}: not done yet. The notebook continues with lvmlib's reference.")
        return _mark_reference(_binarize, name)

    # what comes back
    if b is None:
        fail("it returned None: did the function forget to return its value?")
    if isinstance(b, np.ndarray) or not torch.is_tensor(b):
        fail(f"it returned a {type(b).__name__}; return a torch tensor like x")
    if b.shape != x.shape:
        fail(f"it returned shape {tuple(b.shape)} for x of shape {tuple(x.shape)}")
    if b.dtype == torch.bool:
        fail("it returned booleans", MISTAKES["booleans"])
    if b.dtype != x.dtype:
        fail(f"it returned dtype {b.dtype}, x has {x.dtype}")
    if not bool(((b == 0) | (b == 1)).all()):
        if torch.allclose(b, x):
            fail("it returned the grey levels themselves", MISTAKES["grey_levels_returned"])
        fail("it returned values other than 0. and 1.")

    # a fresh draw from the generator
    again, other = call(x, seed), call(x, seed + 1)
    if torch.equal(b, other):
        if torch.equal(b, (x > 0.5).to(b.dtype)) or torch.equal(b, torch.round(x)):
            fail("it gave the same image for every seed: x > 0.5",
                 MISTAKES["static"])
        fail("it gave the same image for generators seeded differently",
             MISTAKES["fixed_seed"])
    if not torch.equal(b, again):
        fail("two generators seeded alike gave different images",
             MISTAKES["generator_ignored"])

    # independent draws: with every grey level 0.5, an image is all 0s or all 1s only by rare chance
    h = call(torch.full((400, 16), 0.5), seed + 3)
    if bool((h == h.flatten()[0]).all()):  # not a draw at all (one per image would differ between images)
        if any(not torch.equal(call(torch.full((400, 16), 0.5), seed + 10 + k), h) for k in range(8)):
            fail("every pixel of all images came out the same, 0 for some seeds and 1 for others, when every grey "
                 "level is 0.5", MISTAKES["one_for_all"])
        fail(f"every pixel of all {len(h)} images came out {float(h.flatten()[0]):g} when every grey level is 0.5",
             MISTAKES["rescaled"])
    constant = (h == h[:, :1]).all(1)  # the images that are all 0s or all 1s
    ones = float((constant & (h[:, 0] == 1)).double().mean())
    if float(constant.double().mean()) > 0.5 and 0.1 < ones < float(constant.double().mean()) - 0.1:
        # both kinds, all-0 and all-1 images, each common: one coin per image (a share of ones far from 0.5
        # that makes most images all 0s is told by the share below)
        fail("most images came out all 0s or all 1s when every grey level is 0.5",
             MISTAKES["one_per_image"])
    if float((h == h[:1]).all(0).double().mean()) > 0.5 and 0 < float(h[0].double().mean()) < 1:
        fail("every image came out the same when every grey level is 0.5",
             MISTAKES["shared_by_images"])
    share_h = float(h.double().mean())  # pixels drawn independently: 6400 draws with probability 0.5
    if abs(share_h - 0.5) > 5 * (0.25 / h.numel()) ** 0.5:
        fail(f"when every grey level is 0.5 a share {share_h:.3f} of the pixels came out 1; it should be about 0.5",
             MISTAKES["not_grey_levels"])

    # each pixel is 1 in a share x of the draws
    share = call(x.repeat(N_DRAWS, 1), seed + 2).reshape(N_DRAWS, *x.shape).double().mean(0)  # (8, 16)
    p = x.double()
    tol = 5 * torch.sqrt(p * (1 - p) / N_DRAWS) + 1e-9
    if bool(((share - p).abs() > tol).any()):
        if bool(((share - (1 - p)).abs() <= tol).all()):
            fail("pixels came out 1 with probability 1 - x",
                 MISTAKES["inverted"])
        worst = int((share - p).abs().argmax())
        r, c = divmod(worst, x.shape[1])
        fail(f"over {N_DRAWS} draws pixel ({r}, {c}) with grey level {p[r, c]:.3f} was 1 in a share "
             f"{share[r, c]:.3f} of them; it should be about its grey level")

    # the draws are made on x's device
    check_follows_device(binarize, lambda x, generator=None: torch.bernoulli(x, generator=generator),
                         Case((x, torch.Generator().manual_seed(seed))), name=name, compare_values=False)

    if not quiet:
        print(f"✓ {name}: 0./1. of the right shape, fresh and reproducible draws, each pixel 1 with "
              f"probability x over {N_DRAWS} draws, pixels independent, made on x's device.")
    return None if strict else binarize
