"""SepNet can learn: it overfits one tiny synthetic volume in a few dozen CPU steps."""

from __future__ import annotations

import numpy as np
import torch

from sepnet_core.losses import build_loss
from sepnet_core.metrics import dice
from sepnet_core.models import build_model

STEPS = 60
REQUIRED_LOSS_DROP = 5.0  # final loss must be at most initial / 5 (measured: 0.78 -> 0.10)


def _tiny_volume(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One (1, 1, 8, 16, 16) image with two noisy blobs of different brightness and their labels 1, 2."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:8, 0:16, 0:16]
    label = np.zeros((8, 16, 16), dtype=np.int64)
    label[((z - 4) ** 2 / 9 + (y - 5) ** 2 / 9 + (x - 5) ** 2 / 9) <= 1] = 1
    label[((z - 4) ** 2 / 4 + (y - 11) ** 2 / 4 + (x - 11) ** 2 / 6) <= 1] = 2
    image = np.array([0.2, 0.6, 0.9])[label] + rng.normal(0, 0.05, label.shape)
    return torch.from_numpy(image[None, None].astype(np.float32)), torch.from_numpy(label[None])


def test_sepnet_overfits_one_volume():
    torch.manual_seed(0)
    image, label = _tiny_volume()
    model = build_model("sepnet", base=4, num_classes=3, dropout=0.0)
    loss_fn = build_loss("dice")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(STEPS):
        optimiser.zero_grad()
        loss = loss_fn(model(image), label)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] <= losses[0] / REQUIRED_LOSS_DROP, losses
    model.eval()
    with torch.no_grad():
        predicted = model(image).argmax(1)[0].numpy()
    for organ in (1, 2):
        assert dice(predicted == organ, label[0].numpy() == organ) > 0.9
