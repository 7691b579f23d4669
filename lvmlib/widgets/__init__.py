"""ipywidgets explorers of the course, each with a static fallback.

An explorer shows sliders in JupyterLab; where ipywidgets cannot be used (it is
not installed, or ``static=True``, as in a non-interactive run) the same function
draws a static figure of the settings it would let you explore, so a notebook still
runs top to bottom. Each interactive explorer returns its container with ``controls``
(its widgets by name) and ``drawn`` (what its last redraw showed), for a reader or a test.

- ``ppca_marginal``  the p(x) explorer of notebook 01 (PPCA with D = 2, M = 1)
- ``traversal``      a VAE's latent dimensions one slider each, most active first
- ``interpolation``  the straight path in latent space between two images
- ``latent_space``   a VAE with M = 2: the decoded manifold beside the data's codes
"""

from lvmlib.widgets._common import widgets_available
from lvmlib.widgets.interpolation import interpolate, interpolation_explorer, latent_path
from lvmlib.widgets.latent_space import latent_space_explorer, manifold
from lvmlib.widgets.ppca_marginal import ppca_marginal_explorer
from lvmlib.widgets.traversal import latent_sweep, latent_traversal_explorer

__all__ = [
    "widgets_available",
    "ppca_marginal_explorer",
    "latent_traversal_explorer",
    "interpolation_explorer",
    "latent_space_explorer",
    "latent_sweep",
    "latent_path",
    "interpolate",
    "manifold",
]
