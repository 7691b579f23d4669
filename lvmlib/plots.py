"""Matplotlib figures of the course.

Every function takes ``ax=None`` (a new figure is made when it is None) and returns
what it drew, so a notebook can restyle or test it.

Bad input is an error naming the argument before anything is drawn: a figure never shows
a wrong picture silently (NaN values that would leave gaps, an indefinite "covariance"
drawn as a segment, values a logarithmic axis cannot show, series of mismatched lengths).
"""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import torch


def _axes(ax=None, figsize=(5, 4)):
    """The axes to draw on: ``ax`` itself, or a new figure's axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _finish(ax, *, xlabel=None, ylabel=None, title=None, legend_fontsize=None):
    """Axis labels, a legend and the title, the way every line plot here ends."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_fontsize)
    if title:
        ax.set_title(title)


def _numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _floats(name: str, a, *, finite: bool = True, min_size: int = 1, positive: bool = False) -> np.ndarray:
    """``a`` as a float array, or a TypeError/ValueError naming ``name``: numeric, at least
    ``min_size`` values, finite (NaN would leave a silent gap in a figure), > 0 if asked."""
    try:
        arr = _numpy(a).astype(float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers (an array or tensor), got {type(a).__name__}") from None
    if arr.size < min_size:
        raise ValueError(f"{name} must hold at least {min_size} value(s), got shape {arr.shape}")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    if positive and not (arr > 0).all():
        raise ValueError(f"{name} must be positive (a logarithmic axis shows only values > 0), got min {arr.min():g}")
    return arr


def _number(name: str, v, *, positive: bool = False) -> float:
    """A finite real number (a 0-d array or tensor too), or an error naming ``name``."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got {v!r}")
    if isinstance(v, (torch.Tensor, np.ndarray)):
        if (v.numel() if isinstance(v, torch.Tensor) else v.size) != 1:
            raise ValueError(f"{name} must be one number, got shape {tuple(v.shape)}")
        v = v.item()
    if not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {v!r}")
    v = float(v)
    if not np.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be {'positive and ' if positive else ''}finite, got {v!r}")
    return v


def _int(name: str, v, minimum: int = 1) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _shape2(shape) -> tuple[int, int]:
    try:
        h, w = shape
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair (H, W) of positive integers, got {shape!r}") from None
    return _int("shape[0] (H)", h), _int("shape[1] (W)", w)


def _mapping(name: str, v, what: str) -> dict:
    if not isinstance(v, dict):
        raise TypeError(f"{name} must be a dict {what}, got {type(v).__name__}")
    return v


def image_grid(images, *, shape=(8, 8), ncols=10, ax=None, title=None, cmap="gray_r", vmin=None, vmax=None):
    """Show flattened images (N, H*W) as a grid; returns the AxesImage.

    Inputs: images (N, H*W) or (N, H, W), numpy or torch; shape the (H, W) of one image.
    """
    imgs = _floats("images", images, min_size=0)
    h, w = _shape2(shape)
    ncols = _int("ncols", ncols)
    if imgs.ndim == 2:
        if imgs.shape[1] != h * w:
            raise ValueError(f"images have {imgs.shape[1]} pixels each, shape={shape} needs {h * w}")
        imgs = imgs.reshape(-1, h, w)  # (N, H, W)
    elif imgs.ndim != 3:
        raise ValueError(f"images must be (N, H*W) or (N, H, W), got shape {imgs.shape}")
    elif imgs.shape[1:] != (h, w):
        raise ValueError(f"images of shape (N, H, W) must have (H, W) = shape={shape}, got {imgs.shape}")
    n = imgs.shape[0]
    if n == 0:
        raise ValueError(f"images must hold at least one image, got shape {imgs.shape}")
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    canvas = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = imgs[i]
    ax = _axes(ax, figsize=(ncols * 0.6 + 0.5, nrows * 0.6 + 0.5))
    im = ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return im


def confidence_vs_density(confidence, log_p_x, groups, *, threshold=None, ax=None, title=None):
    """Scatter of a classifier's confidence max_y p(y|x) against a density's log p(x), one colour per group.

    Inputs: confidence (N,), log_p_x (N,), groups (N,) names of where each input came from;
        threshold an optional log p(x) below which inputs are unfamiliar (a vertical line).
    Returns: the axes.
    """
    conf, lp, groups = _floats("confidence", confidence), _floats("log_p_x", log_p_x), np.asarray(groups)
    if not (conf.shape == lp.shape == groups.shape) or conf.ndim != 1:
        raise ValueError(f"confidence, log_p_x and groups must be 1-D of one length, got "
                         f"{conf.shape}, {lp.shape}, {groups.shape}")
    ax = _axes(ax, figsize=(7, 4.5))
    for name in dict.fromkeys(groups.tolist()):
        sel = groups == name
        ax.scatter(lp[sel], conf[sel], s=12, alpha=0.6, label=str(name))
    if threshold is not None:
        ax.axvline(float(threshold), color="k", ls="--", lw=1, label="unfamiliar below")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("log p(x) under the density model")
    ax.set_ylabel("classifier confidence  max_y p(y|x)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- linear-Gaussian models and PPCA
def _ellipse_points(mean, cov, n_std=2.0, n=200) -> np.ndarray:
    """Points (n, 2) on the n_std-standard-deviation contour of N(mean, cov) in 2-D.

    cov must be symmetric positive semi-definite (a zero eigenvalue gives a segment, the
    contour of a degenerate Gaussian); an indefinite matrix is an error, not a picture.
    """
    mean = _floats("mean", mean).reshape(2)
    cov = _floats("cov", cov).reshape(2, 2)
    n_std = _number("n_std", n_std, positive=True)
    scale = max(np.abs(cov).max(), np.finfo(float).tiny)
    if abs(cov[0, 1] - cov[1, 0]) > 1e-8 * scale:
        raise ValueError(f"cov must be symmetric, got {cov.tolist()}")
    evals, evecs = np.linalg.eigh(cov)
    if evals.min() < -1e-10 * scale:
        raise ValueError(
            f"cov must be positive semi-definite (a covariance), got eigenvalues {evals.tolist()}: "
            "an indefinite matrix has no Gaussian contour"
        )
    t = np.linspace(0.0, 2.0 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)])  # (2, n)
    return (mean[:, None] + evecs @ (n_std * np.sqrt(np.clip(evals, 0, None))[:, None] * circle)).T  # (n, 2)


def covariance_ellipse(mean, cov, *, n_std=2.0, ax=None, **style):
    """Draw the contour at ``n_std`` standard deviations of a 2-D Gaussian N(mean, cov); returns the Line2D.

    Inputs: mean (2,), cov (2, 2) symmetric positive semi-definite, numpy or torch.
    """
    cov_np = _numpy(cov)
    if cov_np.shape != (2, 2) or _numpy(mean).size != 2:
        raise ValueError(f"covariance_ellipse draws 2-D Gaussians: mean (2,), cov (2, 2); got "
                         f"{_numpy(mean).shape}, {cov_np.shape}")
    pts = _ellipse_points(mean, cov, n_std)
    ax = _axes(ax)
    (line,) = ax.plot(pts[:, 0], pts[:, 1], **style)
    return line


def monte_carlo_gaussian(samples, mean, cov, *, ax=None, title=None, n_std=2.0, max_points=1500, label="samples"):
    """Samples of a 2-D Gaussian with the formula's contour and the samples' own (empirical) contour.

    Inputs: samples (S, 2); mean (2,) and cov (2, 2) from the formula.
    Returns: dict with the artists "samples", "formula", "empirical".
    """
    s = _floats("samples", samples)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape[0] < 2:
        raise ValueError(f"samples must be (S, 2) with S >= 2 (for their covariance), got shape {s.shape}")
    _ellipse_points(mean, cov, n_std)  # checks mean, cov and n_std before anything is drawn
    ax = _axes(ax, figsize=(5, 5))
    shown = s[:max_points]
    out = {"samples": ax.scatter(shown[:, 0], shown[:, 1], s=4, alpha=0.25, color="0.4", label=label)}
    out["formula"] = covariance_ellipse(mean, cov, n_std=n_std, ax=ax, color="C3", lw=2.5,
                                        label=f"formula ({n_std:g} sd)")
    out["empirical"] = covariance_ellipse(s.mean(0), np.cov(s.T), n_std=n_std, ax=ax, color="C0", lw=1.5,
                                          ls="--", label="empirical")
    ax.plot(*_numpy(mean).reshape(2), "x", color="C3", ms=10, mew=2)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title)
    return out


def ppca_marginal(W, sigma2, mu=None, *, ax=None, lim=4.0, title=None, n_std=2.0):
    """The marginal p(x) = N(mu, W W^T + sigma2 I) of a PPCA with D = 2, M = 1.

    Draws the n_std contour of C = W W^T + sigma2 I, the noise-only circle (sigma2 I) and the
    column of W as an arrow from mu. Inputs: W (2, 1), sigma2 > 0, mu (2,) (default 0).
    Returns: dict with "C" (the Line2D of the contour), "noise", "W" (the arrow).
    """
    W = _floats("W", W)
    if W.size != 2:
        raise ValueError(f"ppca_marginal draws D = 2, M = 1: W must be (2, 1), got shape {W.shape}")
    W = W.reshape(2, 1)
    s2 = _number("sigma2", sigma2, positive=True)
    mu = np.zeros(2) if mu is None else _floats("mu", mu)
    if mu.size != 2:
        raise ValueError(f"mu must have shape (2,), got {mu.shape}")
    mu = mu.reshape(2)
    lim = _number("lim", lim, positive=True)
    ax = _axes(ax, figsize=(4, 4))
    C = W @ W.T + s2 * np.eye(2)
    out = {
        "C": covariance_ellipse(mu, C, n_std=n_std, ax=ax, color="C0", lw=2, label="p(x): W W^T + sigma2 I"),
        "noise": covariance_ellipse(mu, s2 * np.eye(2), n_std=n_std, ax=ax, color="0.5", ls=":",
                                    label="noise alone: sigma2 I"),
        "W": ax.annotate("", xy=mu + W[:, 0], xytext=mu,
                         arrowprops=dict(arrowstyle="->", color="C3", lw=2)),
    }
    ax.plot([], [], color="C3", label="W (the latent direction)")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title, fontsize=9)
    return out


def ppca_projection_2d(X, mu, W, X_rec, *, ax=None, title=None):
    """The lecture's "projection of 2-D data onto 1-D": data, principal direction, reconstructions.

    Inputs: X (N, 2) data; mu (2,), W (2, 1) of a PPCA with M = 1; X_rec (N, 2) the
    reconstructions W E[z | x] + mu (they lie on the line through mu along W).
    Returns: dict with "data", "direction", "reconstructions", "links".
    """
    X, X_rec = _floats("X", X), _floats("X_rec", X_rec)
    mu, W = _floats("mu", mu), _floats("W", W)
    if X.ndim != 2 or X.shape[1] != 2 or X_rec.shape != X.shape or W.size != 2 or mu.size != 2:
        raise ValueError(f"need X (N, 2), X_rec like X, mu (2,) and W (2, 1); got {X.shape}, {X_rec.shape}, "
                         f"{mu.shape}, {W.shape}")
    mu, W = mu.reshape(2), W.reshape(2, 1)
    if not np.linalg.norm(W) > 0:
        raise ValueError("W must be non-zero: its direction is the line the data are projected onto")
    ax = _axes(ax, figsize=(6, 5))
    from matplotlib.collections import LineCollection

    links = LineCollection(np.stack([X, X_rec], axis=1), colors="0.7", linewidths=0.6, zorder=1)
    ax.add_collection(links)
    u = W[:, 0] / np.linalg.norm(W[:, 0])
    t = (X - mu) @ u
    span = np.array([t.min() - 1.0, t.max() + 1.0])
    out = {
        "links": links,
        "data": ax.scatter(X[:, 0], X[:, 1], s=12, color="C0", zorder=2, label="data x"),
        "direction": ax.plot(mu[0] + span * u[0], mu[1] + span * u[1], color="C3", lw=1.5, zorder=1,
                             label="principal direction (along W)")[0],
        "reconstructions": ax.scatter(X_rec[:, 0], X_rec[:, 1], s=12, color="C1", marker="x", zorder=3,
                                      label="reconstruction W E[z|x] + mu"),
    }
    ax.plot(*mu, "k+", ms=12, mew=2, label="mu")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    return out


def latent_1d(z_mean, z_std=None, *, ax=None, title=None, bins=30):
    """Histogram of 1-D posterior means E[z | x_n] against the prior N(0, 1); returns the axes.

    Inputs: z_mean (N,) or (N, 1); z_std the posterior standard deviation (one number for PPCA),
    drawn as a bar of +-1 sd around 0.
    """
    z = _floats("z_mean", z_mean).reshape(-1)
    bins = _int("bins", bins)
    s = None if z_std is None else _number("z_std", _floats("z_std", z_std).reshape(-1)[0], positive=True)
    ax = _axes(ax, figsize=(5, 3))
    ax.hist(z, bins=bins, density=True, color="C1", alpha=0.6, label="posterior means E[z|x]")
    grid = np.linspace(min(-3.5, z.min()), max(3.5, z.max()), 200)
    ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), color="k", lw=1, label="prior p(z) = N(0, 1)")
    if s is not None:
        ax.errorbar([0.0], [0.05], xerr=[[s], [s]], fmt="o", color="C3", capsize=4,
                    label=f"posterior sd = {s:.3f}")
    ax.set_xlabel("z")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def eigen_spectrum(eigenvalues, n_components, sigma2=None, *, ax=None, title=None):
    """Eigenvalues of the sample covariance (largest first), the M kept ones highlighted, sigma2_ML dashed.

    Inputs: eigenvalues (D,) in any order; n_components M; sigma2 the average of the discarded ones.
    Returns: the axes.
    """
    lam = np.sort(_floats("eigenvalues", eigenvalues).reshape(-1))[::-1]
    if lam[-1] < -1e-8 * max(lam[0], np.finfo(float).tiny):
        raise ValueError(f"eigenvalues must be >= 0 (those of a covariance matrix), got {lam[-1]:g}")
    M = _int("n_components", n_components)
    if M > lam.size:
        raise ValueError(f"n_components must be at most the number of eigenvalues {lam.size}, got {M}")
    s2 = None if sigma2 is None else _number("sigma2", sigma2, positive=True)
    ax = _axes(ax, figsize=(6, 3.5))
    idx = np.arange(1, lam.size + 1)
    ax.bar(idx[:M], lam[:M], color="C0", label=f"kept (M = {M})")
    ax.bar(idx[M:], lam[M:], color="0.7", label="discarded")
    if s2 is not None:
        ax.axhline(s2, color="C3", ls="--", label="sigma2_ML (their average)")
    ax.set_yscale("log")
    _finish(ax, xlabel="i (eigenvalues of S, largest first)", ylabel="lambda_i", title=title, legend_fontsize=8)
    return ax


def reconstructions_by_components(originals, reconstructions, *, shape=(8, 8), ax=None, title=None,
                                  cmap="gray_r", vmin=None, vmax=None):
    """Rows of images: the originals, then their reconstructions for each M.

    Inputs: originals (n, H*W); reconstructions {M: (n, H*W)} (rows in the dict's order).
    Returns: the AxesImage.
    """
    _mapping("reconstructions", reconstructions, "{M: (n, H*W) images}")
    rows = [("data", _floats("originals", originals))]
    rows += [(f"M = {m}", _floats(f"reconstructions[{m!r}]", r)) for m, r in reconstructions.items()]
    n = rows[0][1].shape[0]
    h, w = _shape2(shape)
    for label, r in rows:
        if r.shape != (n, h * w):
            raise ValueError(f"row {label!r} has shape {r.shape}, expected ({n}, {h * w})")
    canvas = np.full((len(rows) * (h + 1) - 1, n * (w + 1) - 1), np.nan)
    for i, (_, r) in enumerate(rows):
        for j in range(n):
            canvas[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = r[j].reshape(h, w)
    ax = _axes(ax, figsize=(n * 0.55 + 1.2, len(rows) * 0.55 + 0.4))
    im = ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([i * (h + 1) + h / 2 - 0.5 for i in range(len(rows))])
    ax.set_yticklabels([label for label, _ in rows], fontsize=8)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return im


def loglik_vs_components(components, curves, *, ax=None, title=None, ylabel="mean log p(x) [nats]"):
    """Mean log-likelihood against the number of components M, one line per data part.

    Inputs: components (K,) the values of M; curves {"train": (K,), "test": (K,), ...}.
    Returns: dict name -> Line2D.
    """
    Ms = _floats("components", components)
    _mapping("curves", curves, "{name: (K,) values}")
    for name, values in curves.items():
        if _floats(f"curves[{name!r}]", values).shape != Ms.shape:
            raise ValueError(f"curve {name!r} has {_numpy(values).shape} values for {Ms.shape} values of M")
    ax = _axes(ax, figsize=(6, 4))
    out = {}
    for name, values in curves.items():
        v = _floats(f"curves[{name!r}]", values)
        if v.shape != Ms.shape:
            raise ValueError(f"curve {name!r} has {v.shape} values for {Ms.shape} values of M")
        (out[name],) = ax.plot(Ms, v, "o-", label=name)
    _finish(ax, xlabel="number of components M", ylabel=ylabel, title=title)
    return out


def loglik_history(histories, *, reference=None, reference_label="closed form (the maximum)", ax=None,
                   title=None, xlabel="iteration", ylabel="mean log p(x) [nats]", skip=0):
    """Log-likelihood per iteration of iterative fits, with the closed-form value as a line.

    Inputs: histories {name: sequence of mean log-likelihoods}; reference a number (the
    closed form's mean log-likelihood); skip the first iterations not to show (they can be
    far below and squash the rest).
    Returns: dict name -> Line2D (and "reference").
    """
    _mapping("histories", histories, "{name: sequence of mean log-likelihoods}")
    skip = _int("skip", skip, minimum=0)
    series = {name: _floats(f"histories[{name!r}]", h).reshape(-1) for name, h in histories.items()}
    for name, h in series.items():
        if skip >= h.size:
            raise ValueError(f"skip={skip} leaves nothing of histories[{name!r}] ({h.size} values) to draw")
    ref = None if reference is None else _number("reference", reference)
    ax = _axes(ax, figsize=(6, 4))
    out = {}
    for name, h in series.items():
        (out[name],) = ax.plot(np.arange(skip, h.size), h[skip:], label=name)
    if ref is not None:
        out["reference"] = ax.axhline(ref, color="k", ls="--", lw=1, label=reference_label)
    _finish(ax, xlabel=xlabel, ylabel=ylabel, title=title, legend_fontsize=8)
    return out


def timing_vs_dimension(dims, times, *, ax=None, title=None, ylabel="seconds"):
    """Run time against the data dimension D on log-log axes, one line per method.

    Inputs: dims (K,); times {method: (K,) seconds}. Returns: dict method -> Line2D.
    """
    D = _floats("dims", dims, positive=True)
    _mapping("times", times, "{method: (K,) seconds}")
    series = {name: _floats(f"times[{name!r}]", t, positive=True) for name, t in times.items()}
    for name, t in series.items():
        if t.shape != D.shape:
            raise ValueError(f"times[{name!r}] has shape {t.shape}, dims has {D.shape}")
    ax = _axes(ax, figsize=(6, 4))
    out = {}
    for name, t in series.items():
        (out[name],) = ax.loglog(D, t, "o-", label=name)
    _finish(ax, xlabel="data dimension D", ylabel=ylabel, title=title, legend_fontsize=8)
    return out


# ----------------------------------------------------------------------------- the ELBO (notebook 04)
def jensen_inequality(w, *, ax=None, title=None, max_points=400):
    """Jensen's inequality for the concave log: log E[w] >= E[log w].

    Draws the curve log(w), the samples (w_i, log w_i), their centre of mass (E[w], E[log w])
    (it lies below the curve) and the point (E[w], log E[w]) on the curve.
    Inputs: w (N,) positive samples (e.g. importance weights p(x, z) / q(z|x) rescaled).
    Returns: dict with "curve", "samples", "mean_of_log", "log_of_mean", "gap" (the artists).
    """
    w = _floats("w", w).reshape(-1)
    if w.size < 2 or not np.all(w > 0):
        raise ValueError("w must hold at least two positive samples")
    ax = _axes(ax, figsize=(6, 4))
    grid = np.linspace(w.min() * 0.8, w.max() * 1.05, 300)
    mean_w, mean_log = w.mean(), np.log(w).mean()
    out = {}
    (out["curve"],) = ax.plot(grid, np.log(grid), color="k", lw=1.5, label="log w")
    shown = w[:max_points]
    out["samples"] = ax.scatter(shown, np.log(shown), s=10, alpha=0.35, label="samples (w_i, log w_i)")
    (out["mean_of_log"],) = ax.plot([mean_w], [mean_log], "o", color="C3", ms=8, label="(E[w], E[log w])")
    (out["log_of_mean"],) = ax.plot([mean_w], [np.log(mean_w)], "s", color="C2", ms=8, label="(E[w], log E[w])")
    out["gap"] = ax.vlines(mean_w, mean_log, np.log(mean_w), color="C1", lw=2,
                           label=f"gap log E[w] - E[log w] = {np.log(mean_w) - mean_log:.3f}")
    ax.set_xlabel("w")
    ax.set_ylabel("log w")
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return out


def gap_vs_kl(kl, gap, *, labels=None, ax=None, title=None):
    """The ELBO's gap log p(x) - ELBO(q) against KL(q || p(z|x)): the points lie on y = x.

    Inputs: kl (N,), gap (N,) (one point per q), labels (optional, N strings for a legend).
    Returns: dict with "points" (a list of PathCollections) and "diagonal".
    """
    kl = _floats("kl", kl).reshape(-1)
    gap = _floats("gap", gap).reshape(-1)
    if kl.shape != gap.shape:
        raise ValueError(f"kl and gap must have the same length, got {kl.size} and {gap.size}")
    if labels is not None and len(labels) != kl.size:
        raise ValueError(f"labels must hold one label per point ({kl.size}), got {len(labels)}")
    ax = _axes(ax, figsize=(5, 4.5))
    hi = max(kl.max(), gap.max(), 1e-12) * 1.1
    (diag,) = ax.plot([0, hi], [0, hi], color="k", lw=1, ls="--", label="gap = KL")
    points = []
    if labels is None:
        points.append(ax.scatter(kl, gap, s=30, zorder=3))
    else:
        for k, g, lab in zip(kl, gap, labels):
            points.append(ax.scatter([k], [g], s=40, zorder=3, label=str(lab)))
    _finish(ax, xlabel="KL(q(z|x) || p(z|x))  [nats]", ylabel="log p(x) - ELBO(q)  [nats]", title=title, legend_fontsize=8)
    return {"points": points, "diagonal": diag}


def gradient_variance(n_samples, variances, *, ax=None, title=None, ylabel="variance of the gradient estimate"):
    """Variance of gradient estimators against the number of samples S (log-log), one line each.

    Inputs: n_samples (K,); variances {estimator name: (K,) variances}.
    Returns: dict name -> Line2D.
    """
    S = _floats("n_samples", n_samples, positive=True).reshape(-1)
    _mapping("variances", variances, "{estimator name: (K,) variances}")
    series = {name: _floats(f"variances[{name!r}]", v, positive=True).reshape(-1) for name, v in variances.items()}
    for name, v in series.items():
        if v.shape != S.shape:
            raise ValueError(f"variances[{name!r}] has {v.size} values for {S.size} sample sizes")
    ax = _axes(ax, figsize=(6, 4))
    out = {}
    for name, v in series.items():
        (out[name],) = ax.loglog(S, v, "o-", label=name)
    _finish(ax, xlabel="samples S per estimate", ylabel=ylabel, title=title, legend_fontsize=8)
    return out


def iwae_vs_k(Ks, bounds, *, log_px=None, spread=None, ax=None, title=None, ylabel="mean bound [nats]"):
    """The importance-weighted bound L_K against K (log x-axis), with the exact log p(x) as a line.

    Inputs: Ks (n,); bounds (n,) mean L_K; log_px a number (the limit); spread (n,) optional
    standard deviations of L_K over repeats (drawn as a band).
    Returns: dict with "bound", and "band" / "log_px" when drawn.
    """
    K = _floats("Ks", Ks, positive=True).reshape(-1)
    b = _floats("bounds", bounds).reshape(-1)
    if K.shape != b.shape:
        raise ValueError(f"Ks and bounds must have the same length, got {K.size} and {b.size}")
    if spread is not None:
        sp = _floats("spread", spread).reshape(-1)
        if sp.shape != K.shape or (sp < 0).any():
            raise ValueError(f"spread must hold {K.size} standard deviations >= 0, one per K, got {sp.tolist()}")
    lp = None if log_px is None else _number("log_px", log_px)
    ax = _axes(ax, figsize=(6, 4))
    out = {}
    (out["bound"],) = ax.semilogx(K, b, "o-", label="L_K (importance-weighted bound)")
    if spread is not None:
        out["band"] = ax.fill_between(K, b - sp, b + sp, alpha=0.2, color=out["bound"].get_color())
    if lp is not None:
        out["log_px"] = ax.axhline(lp, color="k", ls="--", lw=1, label="exact log p(x)")
    _finish(ax, xlabel="K (importance samples)", ylabel=ylabel, title=title, legend_fontsize=8)
    return out


# ----------------------------------------------------------------------------- the VAE (notebook 05)
def training_curves(history, key="loss", *, ax=None, title=None, ylabel=None):
    """Training and validation curves of one logged term from ``lvmlib.training``'s history.

    Inputs: history, the ``TrainResult.history`` dict ({"epoch", "train": {key: [...]},
    "val_epoch", "val": {key: [...]}}), or a dict {label: such a history} for several runs;
    key, the term to draw ("loss", "elbo", "re", "kl").
    Returns: dict label -> Line2D ("train"/"val", or "<run> train"/"<run> val").
    """
    _mapping("history", history, "(a TrainResult.history, or {label: history})")
    runs = {"": history} if "train" in history else dict(history)
    for run, h in runs.items():
        where = f"history[{run!r}]" if run else "history"
        if not isinstance(h, dict) or not isinstance(h.get("train"), dict):
            raise TypeError(f"{where} must be a TrainResult.history dict with 'epoch' and 'train', got {type(h).__name__}")
        if key not in h["train"]:
            raise ValueError(f"the history has no term {key!r}; it has {sorted(h['train'])}")
        pairs = [("epoch", "train")] + ([("val_epoch", "val")] if h.get("val") and key in h["val"] else [])
        for xs, part in pairs:
            if len(h.get(xs, ())) != len(h[part][key]):
                raise ValueError(f"{where}: {xs!r} has {len(h.get(xs, ()))} entries but {part!r}[{key!r}] has "
                                 f"{len(h[part][key])}")
    ax = _axes(ax, figsize=(6, 4))
    out = {}
    for i, (run, h) in enumerate(runs.items()):
        prefix = f"{run} " if run else ""
        color = f"C{i}"
        (out[prefix + "train"],) = ax.plot(h["epoch"], h["train"][key], color=color, alpha=0.6,
                                          label=prefix + "train")
        if h.get("val") and key in h["val"]:
            (out[prefix + "val"],) = ax.plot(h["val_epoch"], h["val"][key], color=color, ls="--",
                                            label=prefix + "validation")
    _finish(ax, xlabel="epoch", ylabel=ylabel or key, title=title, legend_fontsize=8)
    return out


def latent_activity(values, *, threshold=None, ax=None, title=None, ylabel="Var_x[mu_z]  (log scale)", log=True):
    """Grouped bars per latent dimension (e.g. A_m = Var_x(mu_z,m) or KL_m), one colour per model.

    Inputs: values {model name: (M,)}; threshold (drawn as a horizontal line, e.g. the 0.01 of
    active units). Returns: dict name -> BarContainer (and "threshold").
    """
    _mapping("values", values, "{model name: (M,) values}")
    if not isinstance(log, bool):
        raise TypeError(f"log must be True or False, got {log!r}")
    series = {name: _floats(f"values[{name!r}]", v, positive=log).reshape(-1) for name, v in values.items()}
    threshold = None if threshold is None else _number("threshold", threshold, positive=log)
    ax = _axes(ax, figsize=(7, 3.5))
    names = list(values)
    width = 0.8 / max(1, len(names))
    out = {}
    for i, name in enumerate(names):
        v = series[name]
        x = np.arange(v.size) + (i - (len(names) - 1) / 2) * width
        out[name] = ax.bar(x, v, width=width, label=name)
    if threshold is not None:
        out["threshold"] = ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("latent dimension m")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars fill the axes
    if title:
        ax.set_title(title)
    return out


def latent_traversal(images, values, *, dims=None, shape=(8, 8), ax=None, title=None, cmap="gray_r",
                     vmin=None, vmax=None):
    """A static latent traversal: row r shows the decoder's output as latent dim ``dims[r]`` sweeps
    over ``values`` (the other dimensions fixed).

    Inputs: images (R, S, H*W) (R dimensions, S steps); values (S,) the swept values;
    dims (R,) the dimension indices (default 0..R-1); vmin, vmax the grey-value range (e.g. 0, 16).
    Returns: the AxesImage.
    """
    imgs = _floats("images", images)
    if imgs.ndim != 3:
        raise ValueError(f"images must have shape (R, S, H*W), got {imgs.shape}")
    R, S, _ = imgs.shape
    vals = _floats("values", values).reshape(-1)
    if vals.size != S:
        raise ValueError(f"values has {vals.size} entries for {S} steps")
    dims = list(range(R)) if dims is None else [_int("dims[i]", d, minimum=0) for d in dims]
    if len(dims) != R:
        raise ValueError(f"dims must name one latent dimension per row of images ({R}), got {len(dims)}")
    h, w = _shape2(shape)
    ax = _axes(ax, figsize=(S * 0.6 + 1.0, R * 0.6 + 0.8))
    im = image_grid(imgs.reshape(R * S, -1), shape=shape, ncols=S, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_axis_on()
    ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(S)])
    ax.set_xticklabels([f"{v:.1f}" for v in vals], fontsize=7)
    ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(R)])
    ax.set_yticklabels([f"z{d}" for d in dims], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("value of the swept latent dimension")
    if title:
        ax.set_title(title)
    return im
