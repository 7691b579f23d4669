"""Normalizing flows for the variational posterior (the lecture's remedy for the mismatch between
q(z|x) and the true posterior p(z|x)).

Modules: ``steps`` (the steps as functions of tensors, each returning (z', log|det dz'/dz|):
planar, Householder, IAF; and their inverses), ``modules`` (flows of K steps with parameters
amortised from the encoder's features: :class:`PlanarFlow`, :class:`HouseholderFlow`,
:class:`IAFFlow` with a :class:`MADE`), ``flow_vae`` (:class:`FlowVAE`, the VAE whose q(z|x) is a
Gaussian pushed through a flow; ``VAE(VAEConfig(posterior=..., flow_length=K))`` builds it).
"""

from lvmlib.flows.flow_vae import FlowVAE, log_px_from_params
from lvmlib.flows.modules import FLOWS, MADE, Flow, HouseholderFlow, IAFFlow, PlanarFlow, make_flow
from lvmlib.flows.steps import (
    householder_step,
    iaf_inverse,
    iaf_step,
    planar_inverse,
    planar_step,
    planar_u_hat,
)

__all__ = [
    "planar_u_hat", "planar_step", "planar_inverse", "householder_step", "iaf_step", "iaf_inverse",
    "Flow", "PlanarFlow", "HouseholderFlow", "MADE", "IAFFlow", "make_flow", "FLOWS",
    "FlowVAE", "log_px_from_params",
]
