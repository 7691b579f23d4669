"""The training forward waits for nothing: ``forward(x, check=False)`` of every model the course
trains traces into one graph (a graph break there is a host read, a synchronisation per step on a
GPU), and KL warm-up under ``torch.compile`` compiles once, not once per weight."""

from __future__ import annotations

import pytest
import torch

from lvmlib.hierarchical import HierarchicalVAE, HierarchicalVAEConfig
from lvmlib.training import TrainConfig, train
from lvmlib.vae import VAE, VAEConfig

MODELS = {
    "standard": lambda: VAE(VAEConfig(D=6, M=2, H=8, device="cpu")),
    "mog": lambda: VAE(VAEConfig(D=6, M=2, H=8, prior="mog", n_components=3, device="cpu")),
    "vamp": lambda: VAE(VAEConfig(D=6, M=2, H=8, prior="vamp", n_components=3, device="cpu")),
    "vamp-no-encoder-gradient": lambda: VAE(VAEConfig(D=6, M=2, H=8, prior="vamp", n_components=3,
                                                      vamp_encoder_gradient=False, device="cpu")),
    "categorical-mog": lambda: VAE(VAEConfig(D=6, M=2, H=8, likelihood="categorical", prior="mog", n_components=3,
                                             device="cpu")),
    "planar-flow": lambda: VAE(VAEConfig(D=6, M=2, H=8, posterior="planar", flow_length=2, device="cpu")),
    "householder-flow-mog": lambda: VAE(VAEConfig(D=6, M=2, H=8, posterior="householder", flow_length=2, prior="mog",
                                                  n_components=3, device="cpu")),
    "iaf-flow-vamp": lambda: VAE(VAEConfig(D=6, M=2, H=8, posterior="iaf", flow_length=2, prior="vamp",
                                           n_components=3, device="cpu")),
    "hierarchical": lambda: HierarchicalVAE(HierarchicalVAEConfig(D=6, M=2, M2=2, H=8, device="cpu")),
    "hierarchical-mog": lambda: HierarchicalVAE(HierarchicalVAEConfig(D=6, M=2, M2=2, H=8, prior="mog",
                                                                      n_components=3, device="cpu")),
    "hierarchical-vamp-no-encoder-gradient": lambda: HierarchicalVAE(HierarchicalVAEConfig(
        D=6, M=2, M2=2, H=8, prior="vamp", n_components=3, vamp_encoder_gradient=False, device="cpu")),
}


def _batch(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if model.config.likelihood == "categorical":
        return torch.randint(0, model.config.n_levels, (8, 6), generator=g).float()
    return (torch.rand(8, 6, generator=g) > 0.5).float()


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", list(MODELS))
def test_the_training_forward_has_no_graph_break(name):
    model = MODELS[name]()
    model.kl_weight = 0.3
    x = _batch(model)
    explained = torch._dynamo.explain(lambda b: model(b, check=False)["loss"])(x)
    reasons = [str(r.reason).splitlines()[0] for r in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


def test_the_check_true_forward_does_read_the_host():
    """The test above would pass vacuously if explain saw no host reads at all: check=True has them."""
    model = MODELS["standard"]()
    explained = torch._dynamo.explain(lambda b: model(b, check=True)["loss"])(_batch(model))
    assert explained.graph_break_count > 0


class _Counter:
    """A torch.compile backend that counts the graphs it is given and runs them eagerly."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


@pytest.mark.parametrize("name", ["standard", "vamp", "hierarchical-mog", "planar-flow"])
def test_changing_kl_weight_does_not_recompile(name):
    model = MODELS[name]()
    counter = _Counter()
    compiled = torch.compile(model, backend=counter, dynamic=False)
    x = _batch(model)
    losses = []
    for w in (0.0, 0.1, 0.2, 0.5, 0.75, 1.0):
        model.kl_weight = w
        torch.manual_seed(0)
        losses.append(compiled(x, check=False)["loss"].item())
        torch.manual_seed(0)
        eager = model(x, check=False)["loss"].item()
        assert losses[-1] == pytest.approx(eager, rel=1e-6)  # the compiled graph reads the current weight
    assert counter.graphs == 1
    assert len(set(losses)) == len(losses)  # the weight changed the loss each time


def test_warmup_under_compile_compiles_at_most_twice(monkeypatch):
    """What the trainer does with --compile --warmup: one graph for the full batches and one for the
    short last batch (dynamic=False), whatever the KL weight of the epoch."""
    counter = _Counter()
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, **kw: real_compile(m, **{**kw, "backend": counter}))
    model = MODELS["mog"]()
    x = (torch.rand(40, 6, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    cfg = TrainConfig(device="cpu", progress=False, batch_size=16, max_epochs=6, patience=None, warmup_epochs=5,
                      compile_model=True)
    result = train(model, x, x[:8], cfg)
    assert result.history["kl_weight"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert 1 <= counter.graphs <= 2
