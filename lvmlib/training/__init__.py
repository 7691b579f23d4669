"""The training loop every notebook uses: early stopping, progress bar, history, checkpoints.

The lecture trains its VAE by maximising the ELBO averaged over the data,

    max_theta,phi  (1/N) sum_n ELBO(x_n; theta, phi),

with a stochastic gradient method on mini-batches, and keeps the model with the best
ELBO on held-out validation data (early stopping). This package implements that loop once,
for any ``nn.Module`` whose ``forward`` returns a dict of named terms with a scalar
``"loss"`` to minimise (for the VAE, ``loss`` = -ELBO averaged over the batch):

- the data are moved to the device ONCE and mini-batches are made by indexing with a
  seeded permutation per epoch (no ``DataLoader``: on small data sets this is most of the
  speed);
- every key of the model's output dict is averaged over the epoch, for training and for
  validation, and kept in the history;
- early stopping with ``patience`` epochs on the validation loss; the best weights are
  restored into the model at the end;
- a failure loses nothing already learned: on ``KeyboardInterrupt`` the loop stops, restores
  the best weights and returns a result marked ``interrupted``; on an error (a NaN/inf loss
  raises ``NonFiniteLossError`` naming the epoch and batch) the best weights are restored
  and the checkpoint of the last completed epoch is written before the error propagates;
- checkpoints are plain dicts of tensors and built-in types (``torch.load(...,
  weights_only=True)`` reads them), and ``train(..., resume_from=path)`` continues a run so
  that it ends exactly like an uninterrupted one (permutations come from a generator seeded
  per epoch, and the global torch RNG state is saved with the checkpoint).

Modules: ``config`` (TrainConfig), ``loop`` (train), ``batches`` (data on the device, epoch
averages, evaluate; ``train_epoch``, one epoch written out: notebook 06's core exercise), ``optim``
(optimiser, schedule, weight averaging), ``checkpoints`` (save, load, load_vae), ``results``
(TrainResult, EpochInfo, NonFiniteLossError), ``cli`` (the command line, ``python -m lvmlib.training --help``).
"""

from lvmlib.training.batches import evaluate
from lvmlib.training.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, load_vae, save_checkpoint
from lvmlib.training.cli import main
from lvmlib.training.config import TrainConfig
from lvmlib.training.loop import _progress_bar, train
from lvmlib.training.results import EpochInfo, NonFiniteLossError, TrainResult

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EpochInfo",
    "NonFiniteLossError",
    "train",
    "evaluate",
    "save_checkpoint",
    "load_checkpoint",
    "load_vae",
    "main",
]
