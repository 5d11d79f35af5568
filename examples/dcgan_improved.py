"""A small DCGAN on Fashion-MNIST with four of the paper's techniques, in a training loop of your own.

- minibatch discrimination in D (paper §3.2),
- virtual batch normalisation in G (§3.5): one reference pass before every G update,
- one-sided label smoothing, real target 0.9 (§3.4),
- historical averaging of both players' parameters, weight 1e-3 (§3.3).

D also adds Gaussian noise (sigma 0.2) to its input, which keeps it from winning too early.

    python examples/dcgan_improved.py --steps 2000 --out samples.png
"""

import argparse

import numpy as np
import torch
from PIL import Image
from torch import nn

from improved_gan import (
    GaussianNoise,
    HistoricalAveraging,
    MinibatchDiscrimination,
    VirtualBatchNorm,
    data_dependent_init,
    discriminator_loss,
    generator_loss_nonsaturating,
    load_dataset,
    virtual_batch_reference,
)

Z_DIM = 64


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(Z_DIM, 128 * 7 * 7), VirtualBatchNorm(128 * 7 * 7), nn.ReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),  # 7 -> 14
            VirtualBatchNorm(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1),  # 14 -> 28
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.up(self.fc(z).view(-1, 128, 7, 7))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            GaussianNoise(0.2),  # active in training mode only
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # 28 -> 14
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # 14 -> 7
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.minibatch = MinibatchDiscrimination(128, num_kernels=32, kernel_dim=5)
        self.out = nn.Linear(self.minibatch.out_features, 1)

    def forward(self, x):
        return self.out(self.minibatch(self.features(x)))  # (N, 1) logits


def save_grid(images, path, rows=8):
    x = (images[: rows * rows].squeeze(1).numpy() * 255).round().astype(np.uint8)  # (n, 28, 28)
    n = x.shape[0] // rows * rows
    grid = x[:n].reshape(-1, rows, 28, 28).transpose(0, 2, 1, 3).reshape(-1, rows * 28)
    Image.fromarray(grid).save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the system one)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="dcgan_samples.png")
    args = parser.parse_args()
    torch.manual_seed(0)

    data = load_dataset("fmnist", data_dir=args.data_dir)
    real = data.train_images.float() / 255  # (N, 1, 28, 28) in [0, 1]
    G, D = Generator(), Discriminator()
    z_ref = torch.randn(args.batch_size, Z_DIM)  # VBN's reference batch: fixed for the whole run

    # Minibatch discrimination's data-dependent init: kernels scaled to the data, o + bias centred at 0.
    data_dependent_init(D, real[torch.randperm(len(real))[:256]])
    ha_d, ha_g = HistoricalAveraging(D), HistoricalAveraging(G)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))

    for step in range(1, args.steps + 1):
        x = real[torch.randint(len(real), (args.batch_size,))]
        # VBN: the reference batch through the CURRENT G, once per update, before the other forwards
        with virtual_batch_reference(G):
            G(z_ref)

        with torch.no_grad():  # D step: no gradient for G (keeps the reference graph for the G step)
            fake = G(torch.randn(args.batch_size, Z_DIM))
        # real and fake as separate batches: minibatch features compare the examples of one batch
        loss_d = discriminator_loss(D(x), D(fake), real_target=0.9) + 1e-3 * ha_d.penalty()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        ha_d.update()

        loss_g = generator_loss_nonsaturating(D(G(torch.randn(args.batch_size, Z_DIM))))
        loss_g = loss_g + 1e-3 * ha_g.penalty()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        ha_g.update()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}: loss_d {loss_d.item():.3f}  loss_g {loss_g.item():.3f}")

    G.eval()
    with torch.no_grad():
        with virtual_batch_reference(G):  # statistics of the final weights
            G(z_ref)
        save_grid(G(torch.randn(64, Z_DIM)), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
