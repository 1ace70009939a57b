#!/usr/bin/env python3
"""Reference for tests/test_net.c: a small network with a SqueezeNet fire
module (one node read by two convolutions, then concatenated), batch norm
and ceil-mode max pooling, run forward and backward by PyTorch. Writes
tests/fixtures/net_fire.h5: the input, targets, every state_dict tensor
before the step (by key), the logits, the loss, every parameter gradient
(grad/<key>) and the running statistics after the forward (after/<key>).

Run with Debian's python3-torch: /usr/bin/python3 tests/reference/gen_net.py
"""
import os

import h5py
import numpy as np
import torch
import torch.nn as nn


class Fire(nn.Module):
    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


def main():
    torch.manual_seed(3)
    torch.set_num_threads(1)
    features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.BatchNorm2d(8), Fire(8, 4, 6, 6),
                             nn.MaxPool2d(3, 2, ceil_mode=True))
    classifier = nn.Sequential(nn.Dropout(0.0), nn.Conv2d(12, 5, 1), nn.AdaptiveAvgPool2d(1))
    model = nn.Module()
    model.features, model.classifier = features, classifier
    with torch.no_grad():  # non-trivial BN affine parameters and running statistics
        features[2].weight.uniform_(0.5, 1.5)
        features[2].bias.uniform_(-0.5, 0.5)
        features[2].running_mean.uniform_(-0.2, 0.2)
        features[2].running_var.uniform_(0.5, 2.0)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 11, 11)
    y = torch.tensor([0, 3, 4])
    logits = classifier(features(x)).flatten(1)
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()

    out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "net_fire.h5")
    with h5py.File(out, "w") as f:
        f["x"] = x.numpy()
        f["y"] = y.numpy().astype(np.int32)
        f["logits"] = logits.detach().numpy()
        f["loss"] = np.float32(loss.item())
        for k, v in before.items():
            f[f"params/{k}"] = v.numpy()
        for k, p in model.named_parameters():
            f[f"grad/{k}"] = p.grad.numpy()
        for k, v in model.state_dict().items():
            f[f"after/{k}"] = v.numpy()


if __name__ == "__main__":
    main()
