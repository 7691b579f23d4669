"""Bad input and faults against the public API: each gives a clear error, never a wrong result.

Every case asserts the exception type and, with ``match``, that the message names the
argument and says what was expected. Modules: data, gaussian, ppca, variational, vae,
priors, plots, widgets, runtime, generative. (The trainer, checkpoints and the command line
have their own file.)
"""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lvmlib import data, gaussian, generative, plots, ppca, priors, runtime, variational, vae, widgets  # noqa: E402

NAN, INF = float("nan"), float("inf")
DT = torch.float64


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _X(N=20, D=5, seed=0):
    return np.random.default_rng(seed).normal(size=(N, D))


def _with_nan(a, where=(0, 0)):
    a = np.array(a, dtype=float)
    a[where] = NAN
    return a


def _vae(**kw):
    base = dict(D=6, M=2, H=8, device="cpu")
    base.update(kw)
    return vae.VAE(vae.VAEConfig(**base))


def _x6(B=3):
    return torch.rand(B, 6, generator=torch.Generator().manual_seed(0))


def _nan_pixel(B=3):
    x = _x6(B)
    x[1, 2] = NAN
    return x


_W52 = torch.randn(5, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
_x35 = torch.randn(3, 5, dtype=DT, generator=torch.Generator().manual_seed(2))
_mu5 = torch.zeros(5, dtype=DT)
_qm = torch.zeros(3, 2, dtype=DT)
_qlv = torch.zeros(3, 2, dtype=DT)


def _llz(x, z):
    return -(z**2).sum(-1)


def _gel(**kw):
    args = dict(x=_x35, W=_W52, mu=_mu5, sigma2=1.0, q_mean=_qm, q_log_var=_qlv)
    args.update(kw)
    return variational.gaussian_elbo_linear(**args)


def _fitted():
    return ppca.PPCA(2).fit(_X())


C = pytest.param  # C(call, exception type, message regex, id=...)

# ----------------------------------------------------------------------------- data
DATA = [
    C(lambda: data.split_rows(np.zeros((10, 2)), (5, 3, 2), y=np.zeros(7)), ValueError,
      r"y must hold one label per row of X, shape \(10,\), got \(7,\)", id="split_rows-fewer-labels"),
    C(lambda: data.split_rows(np.zeros((10, 2)), (5, 3, 2), y=np.zeros(12)), ValueError,
      r"y must hold one label per row of X", id="split_rows-more-labels"),
    C(lambda: data.split_rows(np.zeros((10, 2)), (5, 3, 2), y=np.zeros((10, 2))), ValueError,
      r"y must hold one label per row of X, shape \(10,\)", id="split_rows-2d-labels"),
    C(lambda: data.split_rows(np.zeros(3), (1, 1, 1)), ValueError, r"X must have shape \(N, D\)", id="split_rows-1d-X"),
    C(lambda: data.split_rows(3, (1, 1, 1)), TypeError, r"X must be an array of shape \(N, D\)", id="split_rows-int-X"),
    C(lambda: data.split_rows(np.zeros((3, 2)), (True, True, True)), ValueError,
      r"sizes must be three positive integers", id="split_rows-bool-sizes"),
    C(lambda: data.split_rows(np.zeros((3, 2)), 3), TypeError, r"sizes must be three positive integers",
      id="split_rows-int-sizes"),
    C(lambda: data.split_rows(np.zeros((9, 2)), (5, 3, 2)), ValueError, r"sizes \(5, 3, 2\) add up to 10, but the data has 9",
      id="split_rows-sizes-sum"),
    C(lambda: data.toy_2d(spread=NAN), ValueError, r"spread must be a positive finite number, got nan", id="toy_2d-nan-spread"),
    C(lambda: data.toy_2d(noise=INF), ValueError, r"noise must be a positive finite number, got inf", id="toy_2d-inf-noise"),
    C(lambda: data.toy_2d(spread=-1.0), ValueError, r"spread must be a positive finite number", id="toy_2d-negative-spread"),
    C(lambda: data.toy_2d(angle_deg=NAN), ValueError, r"angle_deg must be a finite number", id="toy_2d-nan-angle"),
    C(lambda: data.toy_2d(spread="2"), TypeError, r"spread must be a number, got '2'", id="toy_2d-str-spread"),
    C(lambda: data.toy_2d(seed=-1), ValueError, r"seed must be a non-negative integer", id="toy_2d-negative-seed"),
    C(lambda: data.toy_2d(n=True), ValueError, r"n must be an integer >= 2", id="toy_2d-bool-n"),
    C(lambda: data.load_digits(scale=None), ValueError, r"scale must be one of \('unit', 'raw', 'binary'\)",
      id="load_digits-None-scale"),
    C(lambda: data.load_digits(return_labels="yes"), TypeError, r"return_labels must be True or False",
      id="load_digits-str-return_labels"),
    C(lambda: data.mnist_split(n_val=0, data_dir="/nonexistent-lvmlib", download=False), ValueError,
      r"n_val must be a positive integer", id="mnist_split-zero-n_val"),
    C(lambda: data.mnist_dir(3), TypeError, r"data_dir must be a path \(str or os.PathLike\)", id="mnist_dir-int"),
    C(lambda: data.load_dataset(None), ValueError, r"unknown dataset None; choose one of", id="load_dataset-None"),
]

# ----------------------------------------------------------------------------- gaussian
z2, e2 = torch.zeros(2), torch.eye(2)
GAUSSIAN = [
    C(lambda: gaussian.log_normal_diag(torch.tensor([NAN, 0.0]), z2, z2), ValueError,
      r"x must be finite, got 1 NaN", id="log_normal_diag-nan-x"),
    C(lambda: gaussian.log_normal_diag(z2, torch.tensor([0.0, INF]), z2), ValueError, r"mu must be finite",
      id="log_normal_diag-inf-mu"),
    C(lambda: gaussian.log_normal_diag(z2, z2, torch.tensor([-INF, 0.0])), ValueError,
      r"log_var must be finite: log_var = -inf is a variance of 0", id="log_normal_diag-minus-inf-log_var"),
    C(lambda: gaussian.log_normal_diag(z2, z2, torch.tensor([NAN, 0.0])), ValueError, r"log_var must be finite",
      id="log_normal_diag-nan-log_var"),
    C(lambda: gaussian.log_normal_diag(torch.zeros(4, 3), torch.zeros(2), torch.zeros(3)), ValueError,
      r"the shapes of x \(4, 3\), mu \(2,\), log_var \(3,\) do not broadcast", id="log_normal_diag-shapes"),
    C(lambda: gaussian.log_normal_diag(None, 0.0, 0.0), TypeError, r"x must be a NumPy array or a torch tensor, got None",
      id="log_normal_diag-None-x"),
    C(lambda: gaussian.log_normal_diag(z2, z2, z2, check="yes"), TypeError, r"check must be True or False",
      id="log_normal_diag-str-check"),
    C(lambda: gaussian.log_normal_standard(torch.tensor([0.0, NAN])), ValueError, r"x must be finite",
      id="log_normal_standard-nan-x"),
    C(lambda: gaussian.log_normal_full(torch.tensor([NAN, 0.0]), z2, e2), ValueError, r"x must be finite",
      id="log_normal_full-nan-x"),
    C(lambda: gaussian.log_normal_full(z2, torch.tensor([NAN, 0.0]), e2), ValueError, r"mu must be finite",
      id="log_normal_full-nan-mu"),
    C(lambda: gaussian.log_normal_full(torch.zeros(4, 2), torch.zeros(3, 2), e2), ValueError,
      r"the shapes of x \(batch\) \(4,\), mu \(batch\) \(3,\), cov \(batch\) \(\) do not broadcast",
      id="log_normal_full-batch-mismatch"),
    C(lambda: gaussian.log_normal_full(torch.zeros(4, 2), z2, e2.expand(3, 2, 2)), ValueError,
      r"cov \(batch\) \(3,\) do not broadcast", id="log_normal_full-cov-batch-mismatch"),
    C(lambda: gaussian.log_normal_full(z2, z2, torch.tensor([[1.0, 2.0], [2.0, 1.0]])), ValueError,
      r"cov must be symmetric positive definite", id="log_normal_full-indefinite-cov"),
    C(lambda: gaussian.kl_normal_diag(torch.tensor([NAN]), torch.zeros(1)), ValueError, r"mu_q must be finite",
      id="kl_normal_diag-nan-mu_q"),
    C(lambda: gaussian.kl_normal_diag(torch.zeros(1), torch.tensor([-INF])), ValueError,
      r"log_var_q must be finite: log_var = -inf", id="kl_normal_diag-minus-inf-log_var_q"),
    C(lambda: gaussian.kl_normal_diag(torch.zeros(4, 3), torch.zeros(2)), ValueError,
      r"the shapes of mu_q \(4, 3\), log_var_q \(2,\) do not broadcast", id="kl_normal_diag-shapes"),
    C(lambda: gaussian.kl_normal_diag(z2, z2, z2, torch.full((2,), INF)), ValueError, r"log_var_p must be finite",
      id="kl_normal_diag-inf-log_var_p"),
    C(lambda: gaussian.linear_gaussian_marginal(torch.tensor([NAN, 0.0]), e2, e2, z2, e2), ValueError,
      r"mu must be finite", id="linear_gaussian_marginal-nan-mu"),
    C(lambda: gaussian.linear_gaussian_marginal(torch.zeros(3, 2), e2.expand(4, 2, 2), e2, z2, e2), ValueError,
      r"mu \(batch\) \(3,\), Lambda \(batch\) \(4,\).* do not broadcast", id="linear_gaussian_marginal-batch-mismatch"),
    C(lambda: gaussian.linear_gaussian_posterior(torch.tensor([INF, 0.0]), z2, e2, e2, z2, e2), ValueError,
      r"y must be finite", id="linear_gaussian_posterior-inf-y"),
    C(lambda: gaussian.linear_gaussian_posterior(torch.zeros(5, 2), torch.zeros(3, 2), e2, e2, z2, e2), ValueError,
      r"y \(batch\) \(5,\).*mu \(batch\) \(3,\).* do not broadcast", id="linear_gaussian_posterior-batch-mismatch"),
]

# ----------------------------------------------------------------------------- ppca
PPCA = [
    C(lambda: ppca.closed_form(np.ones((20, 5)), 2), ValueError, r"X has no variance: every row equals the mean",
      id="closed_form-constant-data"),
    C(lambda: ppca.closed_form(_X() * 1e200, 2), ValueError,
      r"X has values too large for torch.float64: the sum of squared deviations from the mean overflows",
      id="closed_form-huge-values"),
    C(lambda: ppca.closed_form(_X() * 1e-200, 2), ValueError, r"X has values too small for torch.float64",
      id="closed_form-tiny-values"),
    C(lambda: ppca.closed_form(torch.tensor(_X() * 1e30, dtype=torch.float32), 2), ValueError,
      r"X has values too large for torch.float32", id="closed_form-float32-overflow"),
    C(lambda: ppca.closed_form(_X()[:3], 2), ValueError,
      r"X has \(almost\) no variance outside n_components=2 directions: its N=3 centred rows span at most",
      id="closed_form-too-few-rows"),
    C(lambda: ppca.closed_form(_X(), True), TypeError, r"n_components must be an integer, got True",
      id="closed_form-bool-n_components"),
    C(lambda: ppca.fit_gradient(_X()[:3], 2, n_steps=5), ValueError,
      r"X has \(almost\) no variance outside n_components=2 directions.*N - 1 = 2", id="fit_gradient-N-below-M"),
    C(lambda: ppca.PPCA(3).fit(_X()[:2], method="gradient", n_steps=5), ValueError,
      r"X has \(almost\) no variance outside n_components=3 directions", id="PPCA.fit-gradient-N-below-M"),
    C(lambda: ppca.fit_em(_X()[:2], 3, n_iter=5), ValueError, r"X has \(almost\) no variance outside n_components=3",
      id="fit_em-N-below-M"),
    C(lambda: ppca.fit_em(_X(), 2, init=(np.zeros((5, 2)), 1.0)), ValueError,
      r"init W0 must have rank n_components=2 .*got rank 0: W0 = 0 is a saddle point", id="fit_em-W0-zero"),
    C(lambda: ppca.fit_em(_X(), 2, init=(np.c_[np.ones(5), np.zeros(5)], 1.0)), ValueError,
      r"init W0 must have rank n_components=2 .*got rank 1", id="fit_em-W0-rank-deficient"),
    C(lambda: ppca.fit_gradient(_X(), 2, init=(np.zeros((5, 2)), 1.0)), ValueError,
      r"init W0 must have rank n_components=2", id="fit_gradient-W0-zero"),
    C(lambda: ppca.fit_em(np.ones((20, 5)), 2), ValueError, r"X has no variance", id="fit_em-constant-data"),
    C(lambda: ppca.fit_em(_X() * 1e200, 2), ValueError, r"X has values too large", id="fit_em-huge-values"),
    C(lambda: ppca.fit_gradient(np.ones((20, 5)), 2), ValueError, r"X has no variance", id="fit_gradient-constant-data"),
    C(lambda: ppca.fit_gradient(_X(), 2, lr=INF), ValueError, r"lr must be a positive finite number, got inf",
      id="fit_gradient-inf-lr"),
    C(lambda: ppca.fit_gradient(_X(), 2, lr=1e30, n_steps=5), ValueError,
      r"gradient ascent failed at iteration 1: .*lr=1e\+30 is too large", id="fit_gradient-huge-lr"),
    C(lambda: ppca.fit_em(_X(), 2, generator=1), TypeError, r"generator must be a torch.Generator or None, got int",
      id="fit_em-int-generator"),
    C(lambda: ppca.fit_em(_X(), 2, tol=NAN), ValueError, r"tol must be a non-negative finite number or None",
      id="fit_em-nan-tol"),
    C(lambda: ppca.log_likelihood(_X(), 1e200 * np.ones((5, 2)), np.zeros(5), 1.0), ValueError,
      r"M = W\^T W \+ sigma2 I is not finite \(it overflowed\): W's entries are too large", id="log_likelihood-huge-W"),
    C(lambda: ppca.log_likelihood(_X(), np.zeros((5, 2)), np.zeros(5), 1e-320), ValueError,
      r"sigma2 must be at least 2.2\d*e-308, the smallest normal number", id="log_likelihood-subnormal-sigma2"),
    C(lambda: ppca.C_inverse(np.ones((5, 2)), 1e-320), ValueError, r"sigma2 must be at least", id="C_inverse-subnormal-sigma2"),
    C(lambda: ppca.em_step(_X(), np.zeros((5, 2)), np.zeros(5), NAN), ValueError, r"sigma2 must be a positive finite scalar",
      id="em_step-nan-sigma2"),
    C(lambda: ppca.em_step(np.ones((20, 5)), np.ones((5, 2)), np.ones(5), 1.0), ValueError,
      r"X has no variance: every row equals mu",
      id="em_step-constant-data"),
    C(lambda: ppca.PPCA(2).fit(_X(), method="em", lr=0.1), TypeError,
      r"method='em' takes the keywords .*got unknown \['lr'\]", id="PPCA.fit-em-unknown-keyword"),
    C(lambda: _fitted().decode(np.full((3, 2), NAN)), ValueError, r"z contains NaN or inf values", id="PPCA.decode-nan-z"),
    C(lambda: _fitted().log_likelihood(_with_nan(_X())), ValueError, r"X contains NaN or inf values",
      id="PPCA.log_likelihood-nan-X"),
    C(lambda: _fitted().sample(3.0), ValueError, r"n must be a positive integer, got 3.0", id="PPCA.sample-float-n"),
]

# ----------------------------------------------------------------------------- variational
VARIATIONAL = [
    C(lambda: _gel(q_log_var=None, q_scale_tril=torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=DT)), ValueError,
      r"q_scale_tril must be lower triangular .*non-zero entries above the diagonal", id="gaussian_elbo_linear-upper-entries"),
    C(lambda: variational.kl_posterior_linear(_x35, _W52, _mu5, 1.0, _qm, q_scale_tril=torch.tensor([[1.0, 0.5], [0.0, 1.0]])),
      ValueError, r"q_scale_tril must be lower triangular", id="kl_posterior_linear-upper-entries"),
    C(lambda: _gel(q_log_var=None, q_scale_tril=torch.tensor([[1.0, 0.0], [NAN, 1.0]])), ValueError,
      r"q_scale_tril must be finite", id="gaussian_elbo_linear-nan-scale_tril"),
    C(lambda: _gel(x=torch.full((3, 5), NAN)), ValueError, r"x must be finite", id="gaussian_elbo_linear-nan-x"),
    C(lambda: _gel(W=torch.full((5, 2), INF)), ValueError, r"W must be finite", id="gaussian_elbo_linear-inf-W"),
    C(lambda: _gel(q_log_var=torch.full((3, 2), -INF)), ValueError, r"q_log_var must be finite.*-inf is a variance of 0",
      id="gaussian_elbo_linear-minus-inf-q_log_var"),
    C(lambda: _gel(sigma2="1"), TypeError, r"sigma2 must be a positive number, got '1'", id="gaussian_elbo_linear-str-sigma2"),
    C(lambda: _gel(sigma2=True), TypeError, r"sigma2 must be a positive number, got True", id="gaussian_elbo_linear-bool-sigma2"),
    C(lambda: _gel(sigma2=torch.ones(2)), ValueError, r"sigma2 must be a positive number \(one value\), got shape \(2,\)",
      id="gaussian_elbo_linear-vector-sigma2"),
    C(lambda: variational.kl_posterior_linear(_x35, _W52, _mu5, 1e-320, _qm, _qlv), ValueError,
      r"sigma2 must be a positive finite number \(at least", id="kl_posterior_linear-subnormal-sigma2"),
    C(lambda: variational.elbo_terms(None, torch.full((4, 2), NAN), torch.zeros(4, 2), _llz), ValueError,
      r"mu_z must be finite, got 8 NaN", id="elbo_terms-nan-mu_z"),
    C(lambda: variational.elbo_terms(None, torch.zeros(4, 2), torch.full((4, 2), -INF), _llz), ValueError,
      r"log_var must be finite", id="elbo_terms-minus-inf-log_var"),
    C(lambda: variational.elbo_terms(None, torch.zeros(4, 2), torch.zeros(4, 2), lambda x, z: torch.full(z.shape[:2], NAN)),
      ValueError, r"log_px_given_z returned NaN", id="elbo_terms-nan-log_px"),
    C(lambda: variational.elbo_terms(None, torch.zeros(4, 2), torch.zeros(4, 2), _llz, analytic_kl="no"), TypeError,
      r"analytic_kl must be True or False", id="elbo_terms-str-analytic_kl"),
    C(lambda: variational.log_importance_weights(None, torch.zeros(4, 2), torch.zeros(4, 2), None), TypeError,
      r"log_px_given_z must be a callable", id="log_importance_weights-None-callable"),
    C(lambda: variational.log_importance_weights(None, torch.zeros(4, 2), torch.zeros(4, 2), lambda x, z: z), ValueError,
      r"log_px_given_z must return a tensor of shape \(K, B\) = \(1, 4\), got \(1, 4, 2\)",
      id="log_importance_weights-wrong-shape"),
    C(lambda: variational.iwae_bound(torch.full((3, 2), NAN)), ValueError, r"log_w must hold no NaN or \+inf",
      id="iwae_bound-nan"),
    C(lambda: variational.kl_per_dimension(torch.zeros(0, 2), torch.zeros(0, 2)), ValueError,
      r"mu_z must have at least 1 row", id="kl_per_dimension-empty"),
    C(lambda: variational.active_units(torch.full((3, 2), NAN)), ValueError, r"mu_z must be finite", id="active_units-nan"),
    C(lambda: variational.active_units(torch.randn(3, 2), INF), ValueError, r"threshold must be a positive finite number",
      id="active_units-inf-threshold"),
]

# ----------------------------------------------------------------------------- vae and priors
VAE = [
    C(lambda: _vae()(_nan_pixel()), ValueError, r"x must be finite, got 1 NaN", id="VAE-bernoulli-nan-pixel"),
    C(lambda: _vae()(torch.zeros(0, 6)), ValueError, r"x must hold at least one row \(N >= 1\)", id="VAE-empty-batch"),
    C(lambda: _vae()(torch.zeros(0, 6), check=False), ValueError, r"x must hold at least one row",
      id="VAE-empty-batch-unchecked"),
    C(lambda: _vae(likelihood="gaussian")(torch.full((2, 6), INF)), ValueError, r"x must be finite",
      id="VAE-gaussian-inf"),
    C(lambda: _vae(likelihood="gaussian")(torch.full((2, 6), 1e30)), ValueError,
      r"x must have values of magnitude below .* for the Gaussian likelihood in torch.float32", id="VAE-gaussian-huge"),
    C(lambda: _vae(likelihood="categorical", n_levels=5)(torch.full((2, 6), NAN)), ValueError, r"x must be finite",
      id="VAE-categorical-nan"),
    C(lambda: _vae(likelihood="categorical", n_levels=5)(torch.full((2, 6), 2.5)), ValueError,
      r"x must hold integer levels 0\.\.4 \(whole numbers\)", id="VAE-categorical-fraction"),
    C(lambda: _vae()(2 * torch.ones(2, 6)), ValueError, r"x must lie in \[0, 1\] for the Bernoulli likelihood",
      id="VAE-bernoulli-out-of-range"),
    C(lambda: _vae()(np.array([[None] * 6])), TypeError, r"x must be a numeric array .*dtype object", id="VAE-object-array"),
    C(lambda: _vae()(torch.zeros(2, 6, dtype=torch.complex64)), TypeError, r"x must hold real numbers", id="VAE-complex"),
    C(lambda: _vae()(torch.zeros(2, 3, 6)), ValueError, r"x must have shape \(N, D=6\), got \(2, 3, 6\)", id="VAE-3d"),
    C(lambda: _vae()(_x6(), check="no"), TypeError, r"check must be True or False", id="VAE-str-check"),
    C(lambda: _vae()(_x6(), generator=3), TypeError, r"generator must be a torch.Generator or None, got int",
      id="VAE-int-generator"),
    C(lambda: _vae().check_data(torch.full((2, 6), NAN), name="x_val"), ValueError, r"x_val must be finite",
      id="VAE.check_data-names-the-split"),
    C(lambda: _vae().elbo(_nan_pixel()), ValueError, r"x must be finite", id="VAE.elbo-nan"),
    C(lambda: _vae().log_px(torch.zeros(0, 6), K=2), ValueError, r"x must hold at least one row", id="VAE.log_px-empty"),
    C(lambda: _vae().encode(_nan_pixel()), ValueError, r"x must be finite", id="VAE.encode-nan"),
    C(lambda: _vae().reconstruct(_nan_pixel()), ValueError, r"x must be finite", id="VAE.reconstruct-nan"),
    C(lambda: _vae().log_px_given_z(_x6(), torch.zeros(4, 2)), ValueError,
      r"x \(3, 6\) and z \(4, 2\) do not match: x \(B, D\) needs z \(\.\.\., B, M\)", id="VAE.log_px_given_z-batch-mismatch"),
    C(lambda: _vae().decoder.log_prob(_x6(), params=torch.zeros(3, 5)), ValueError,
      r"x \(3, 6\) and params \(3, 5\) do not match", id="Decoder.log_prob-params-shape"),
    C(lambda: _vae().decoder.log_prob(_nan_pixel(), torch.zeros(3, 2)), ValueError, r"x must be finite",
      id="Decoder.log_prob-nan-x"),
    C(lambda: vae.make_mlp(0, 2), ValueError, r"in_dim must be a positive integer, got 0", id="make_mlp-zero-in_dim"),
    C(lambda: vae.make_mlp(3, 2, H=0), ValueError, r"H must be a positive integer, got 0", id="make_mlp-zero-H"),
    C(lambda: vae.Encoder(3, 2)([1.0, 2.0, 3.0]), TypeError, r"x must be a torch.Tensor of shape \(\.\.\., D=3\)",
      id="Encoder-list-x"),
    C(lambda: vae.Encoder(3, 2)(torch.tensor(1.0)), ValueError, r"x must have shape \(\.\.\., D=3\), got \(\)",
      id="Encoder-scalar-x"),
    C(lambda: vae.make_decoder({"D": 3}), TypeError, r"config must be a VAEConfig, got dict", id="make_decoder-dict"),
    C(lambda: priors.make_prior(["standard_normal"], 2), ValueError, r"prior must be one of \[.*'standard_normal'.*\], got \[",
      id="make_prior-list-name"),
    C(lambda: priors.StandardNormalPrior(2).sample(0), ValueError, r"n \(the number of samples\) must be a positive integer",
      id="prior.sample-zero"),
    C(lambda: priors.StandardNormalPrior(2).log_prob(torch.zeros(3, 3)), ValueError, r"z must have shape \(\.\.\., M=2\)",
      id="prior.log_prob-shape"),
]

# ----------------------------------------------------------------------------- plots and widgets
PLOTS = [
    C(lambda: plots.covariance_ellipse(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]])), ValueError,
      r"cov must be positive semi-definite \(a covariance\)", id="covariance_ellipse-indefinite"),
    C(lambda: plots.covariance_ellipse(np.zeros(2), np.array([[1.0, 2.0], [0.0, 1.0]])), ValueError,
      r"cov must be symmetric", id="covariance_ellipse-not-symmetric"),
    C(lambda: plots.covariance_ellipse(np.array([NAN, 0.0]), np.eye(2)), ValueError, r"mean must be finite",
      id="covariance_ellipse-nan-mean"),
    C(lambda: plots.covariance_ellipse(np.zeros(2), np.eye(2), n_std=-1), ValueError,
      r"n_std must be positive and finite", id="covariance_ellipse-negative-n_std"),
    C(lambda: plots.image_grid(np.zeros((0, 64))), ValueError, r"images must hold at least one image", id="image_grid-empty"),
    C(lambda: plots.image_grid(np.full((2, 64), NAN)), ValueError, r"images must be finite", id="image_grid-nan"),
    C(lambda: plots.image_grid(np.zeros((2, 64)), ncols=0), ValueError, r"ncols must be an integer >= 1, got 0",
      id="image_grid-zero-ncols"),
    C(lambda: plots.image_grid(np.zeros((2, 64)), shape=8), ValueError, r"shape must be a pair \(H, W\)",
      id="image_grid-int-shape"),
    C(lambda: plots.image_grid(np.zeros((2, 4, 4))), ValueError, r"images of shape \(N, H, W\) must have \(H, W\) = shape",
      id="image_grid-3d-wrong-shape"),
    C(lambda: plots.monte_carlo_gaussian(np.zeros((1, 2)), np.zeros(2), np.eye(2)), ValueError,
      r"samples must be \(S, 2\) with S >= 2", id="monte_carlo_gaussian-one-sample"),
    C(lambda: plots.ppca_marginal(np.ones((2, 1)), INF), ValueError, r"sigma2 must be positive and finite",
      id="ppca_marginal-inf-sigma2"),
    C(lambda: plots.ppca_marginal(np.ones((3, 1)), 1.0), ValueError, r"W must be \(2, 1\)", id="ppca_marginal-W-shape"),
    C(lambda: plots.ppca_projection_2d(np.ones((5, 2)), np.zeros(2), np.zeros((2, 1)), np.ones((5, 2))), ValueError,
      r"W must be non-zero", id="ppca_projection_2d-zero-W"),
    C(lambda: plots.latent_1d(np.zeros(0)), ValueError, r"z_mean must hold at least 1 value", id="latent_1d-empty"),
    C(lambda: plots.eigen_spectrum(np.arange(1, 6.0), 9), ValueError,
      r"n_components must be at most the number of eigenvalues 5", id="eigen_spectrum-too-many-components"),
    C(lambda: plots.eigen_spectrum(np.array([3.0, 2.0, -1.0]), 1), ValueError, r"eigenvalues must be >= 0",
      id="eigen_spectrum-negative"),
    C(lambda: plots.loglik_history([1, 2, 3]), TypeError, r"histories must be a dict", id="loglik_history-list"),
    C(lambda: plots.loglik_history({"a": [1.0, 2.0]}, skip=5), ValueError, r"skip=5 leaves nothing of histories\['a'\]",
      id="loglik_history-skip-too-large"),
    C(lambda: plots.timing_vs_dimension([1, 2], {"a": [1.0, -1.0]}), ValueError,
      r"times\['a'\] must be positive \(a logarithmic axis", id="timing_vs_dimension-negative"),
    C(lambda: plots.gap_vs_kl([1, 2], [1, 2], labels=["a"]), ValueError, r"labels must hold one label per point \(2\)",
      id="gap_vs_kl-labels"),
    C(lambda: plots.iwae_vs_k([1, 2], [1.0, 2.0], spread=[1.0]), ValueError, r"spread must hold 2 standard deviations",
      id="iwae_vs_k-spread"),
    C(lambda: plots.training_curves({"epoch": [1, 2], "train": {"loss": [1.0]}}), ValueError,
      r"'epoch' has 2 entries but 'train'\['loss'\] has 1", id="training_curves-lengths"),
    C(lambda: plots.latent_activity({"a": [1.0, -2.0]}), ValueError, r"values\['a'\] must be positive",
      id="latent_activity-negative-on-log"),
    C(lambda: plots.latent_traversal(np.zeros((2, 3, 64)), [1, 2, 3], dims=[0]), ValueError,
      r"dims must name one latent dimension per row of images \(2\)", id="latent_traversal-dims"),
    C(lambda: widgets.ppca_marginal_explorer(static=True, sigma2_range=(0, 1)), ValueError,
      r"sigma2_range must be \(low, high\) with 0 < low < high", id="explorer-zero-sigma2"),
    C(lambda: widgets.ppca_marginal_explorer(static=True, w_length=(2, 1)), ValueError,
      r"w_length must be \(low, high\) with 0 <= low < high", id="explorer-reversed-w_length"),
    C(lambda: widgets.ppca_marginal_explorer(static=True, lim=NAN), ValueError,
      r"lim \(half-width of the plotted square\) must be positive and finite", id="explorer-nan-lim"),
    C(lambda: widgets.ppca_marginal_explorer(static="yes"), TypeError, r"static must be True, False or None",
      id="explorer-str-static"),
]

# ----------------------------------------------------------------------------- runtime and generative
RUNTIME = [
    C(lambda: runtime.seed_everything(2**70), ValueError, r"seed must be an integer between 0 and 2\*\*64 - 1",
      id="seed_everything-too-large"),
    C(lambda: runtime.seed_everything(-1), ValueError, r"seed must be an integer between 0", id="seed_everything-negative"),
    C(lambda: runtime.get_device("meta"), ValueError, r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'",
      id="get_device-meta"),
    C(lambda: runtime.get_device(0), TypeError, r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 0",
      id="get_device-int"),
    C(lambda: generative.unfamiliar(np.zeros(3), np.zeros(3), "a"), ValueError,
      r"fraction must be a number between 0 and 1, got 'a'", id="unfamiliar-str-fraction"),
    C(lambda: generative.corrupt(np.full((2, 64), NAN), "inverted"), ValueError,
      r"X must hold finite pixel values in \[0, 1\]", id="corrupt-nan"),
    C(lambda: generative.log_joint("a", np.zeros(4)), TypeError, r"log_p_y_given_x must be numbers", id="log_joint-str"),
]

ALL = DATA + GAUSSIAN + PPCA + VARIATIONAL + VAE + PLOTS + RUNTIME


@pytest.mark.parametrize("call, exc, match", ALL)
def test_bad_input_gives_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_the_suite_is_large_enough():
    assert len(ALL) >= 80


# ----------------------------------------------------------------------------- numbers that are fine
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: ppca.closed_form(_X(), np.int64(2)), id="closed_form-numpy-n_components"),
        pytest.param(lambda: ppca.PPCA(np.int64(2)).fit(_X()).sample(np.int64(3)), id="PPCA-numpy-ints"),
        pytest.param(lambda: ppca.fit_em(_X(), 2, n_iter=np.int64(2), tol=np.float32(1e-6)), id="fit_em-numpy-numbers"),
        pytest.param(lambda: ppca.fit_gradient(_X(), 2, n_steps=np.int64(2), lr=np.float32(0.01)), id="fit_gradient-numpy-numbers"),
        pytest.param(lambda: vae.VAE(vae.VAEConfig(D=np.int64(6), M=np.int64(2), H=np.int64(4), device="cpu")).sample(np.int64(2)),
                     id="VAE-numpy-ints"),
        pytest.param(lambda: priors.make_prior("standard_normal", np.int64(2)).sample(np.int64(2)), id="prior-numpy-ints"),
        pytest.param(lambda: data.toy_2d(n=np.int64(5), seed=np.int64(1)), id="toy_2d-numpy-ints"),
        pytest.param(lambda: plots.image_grid(np.zeros((3, 64)), ncols=np.int64(2)), id="image_grid-numpy-ncols"),
        pytest.param(lambda: variational.active_units(torch.randn(3, 2), np.float32(0.1)), id="active_units-numpy-threshold"),
        pytest.param(lambda: runtime.seed_everything(np.int64(3)), id="seed-numpy"),
    ],
)
def test_numpy_numbers_are_accepted(call):
    call()  # no error


def test_vae_config_turns_numpy_numbers_into_python_numbers():
    import dataclasses
    import json

    c = vae.VAEConfig(D=np.int64(6), M=np.int32(2), sigma2=np.float32(0.5), beta=np.float64(2.0), device="cpu")
    assert type(c.D) is int and type(c.M) is int and type(c.sigma2) is float and type(c.beta) is float
    json.dumps(dataclasses.asdict(c))  # plain data: a checkpoint can store it


def test_a_degenerate_covariance_is_still_drawn_as_its_segment():
    # positive SEMI-definite is allowed: the contour of a rank-1 Gaussian is a segment along its direction
    line = plots.covariance_ellipse(np.zeros(2), np.array([[1.0, 1.0], [1.0, 1.0]]), n_std=1.0)
    xy = line.get_xydata()
    np.testing.assert_allclose(xy[:, 0], xy[:, 1], atol=1e-12)
    assert np.abs(xy).max() == pytest.approx(1.0, abs=1e-3)  # sqrt(2) along (1, 1)/sqrt(2) -> 1 per coordinate


def test_log_density_that_underflows_is_minus_inf_not_an_error():
    # finite inputs whose density underflows: -inf (a number), not NaN and not an error
    out = gaussian.log_normal_diag(torch.tensor([1e30]), torch.tensor([0.0]), torch.tensor([0.0]))
    assert out.item() == -math.inf


def test_gaussian_check_false_skips_the_value_check():
    # check=False is for inner loops: the NaN comes through (what the VAE relies on after check_data)
    assert torch.isnan(gaussian.log_normal_diag(torch.tensor([NAN]), torch.zeros(1), torch.zeros(1), check=False))
    assert torch.isnan(gaussian.kl_normal_diag(torch.tensor([NAN]), torch.zeros(1), check=False))


def test_em_stops_with_an_error_when_sigma2_collapses_on_rank_deficient_data():
    # 200 rows that lie in a 2-D subspace of R^5: sigma2_ML = 0, the closed form refuses; so does EM
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 5))
    with pytest.raises(ValueError, match="almost"):
        ppca.closed_form(X, 2)
    with pytest.raises(ValueError, match=r"EM failed at iteration \d+: sigma2 collapsed .*no variance outside n_components=2"):
        ppca.fit_em(X, 2, n_iter=2000)


def test_fits_still_work_right_above_the_row_limit():
    # N - 1 = M + 1: one direction left for sigma2, a valid (if tiny) problem for all three methods
    X = _X(N=4, D=5)
    W, mu, s2 = ppca.closed_form(X, 2)
    ml = ppca.log_likelihood(X, W, mu, s2).mean().item()
    em = ppca.fit_em(X, 2, n_iter=3000, tol=1e-10, generator=torch.Generator().manual_seed(0))
    assert s2.item() > 0 and em.history[-1] == pytest.approx(ml, abs=1e-3)
