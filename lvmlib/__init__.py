"""lvmlib: the helper library of the course on deep latent variable models.

The notebooks import it instead of copying code. One module per lecture concept:

- ``runtime``     seeding, device choice, smoke mode (the course's small shared helpers)
- ``data``        the embedded digits data, MNIST from IDX files, toy 2-D data
- ``gaussian``    Gaussian log-densities, KL, linear-Gaussian identities (Bishop 2.113-2.117)
- ``ppca``        probabilistic PCA: closed form, EM, gradient fitting, exact posterior
- ``variational`` ELBO estimators, importance-weighted bound, log p(x) by importance sampling
- ``vae``         encoder, decoders, the variational auto-encoder
- ``priors``      priors over the latent space
- ``flows``       normalizing flows for the posterior q(z|x): planar, Householder, IAF (a package)
- ``inference_gap`` the approximation and amortisation gaps (Cremer et al. 2018): q refined per data point
- ``posterior_grid`` the exact posterior and log p(x) of a 2-D latent model by quadrature, with its error
- ``training``    the training loop with early stopping, checkpoints and resume (a package)
- ``pretrained``  VAEs trained on MNIST, shipped with the library and verified at load
- ``plots``       matplotlib figures
- ``widgets``     ipywidgets explorers with static fallbacks
- ``checks``      exercise checks for the notebooks
"""

from lvmlib.runtime import get_device, seed_everything, smoke, smoke_mode

__version__ = "0.1.0"

__all__ = ["get_device", "seed_everything", "smoke", "smoke_mode", "__version__"]
