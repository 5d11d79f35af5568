"""Score an array of your own images with the paper's Inception Score convention (paper §4) and the Frechet
distance to real data.

The score is exp(E_x KL(p(y|x) || p(y))) over 10 in-order splits, on the class probabilities of a network:

- ``--inception-weights FILE``: the paper's network, the 2015 Inception-v3 (torch-fidelity's weights file
  ``weights-inception-2015-12-05-6726825d.pth``; never downloaded), for 32x32 RGB images such as CIFAR-10;
- otherwise a classifier of your own for 28x28 grey images (Fashion-MNIST): ``--classifier FILE`` (a state
  dict saved by this script), else one trained here for ``--steps`` steps. Its numbers are a "classifier
  score", comparable only with scores from the same network, never with published Inception Scores.

    python examples/inception_score_of_my_samples.py --images my_samples.npy --steps 500
    # my_samples.npy: uint8 (N, 28, 28) or (N, 1, 28, 28) in [0, 255], or float in [0, 1]
"""

import argparse

import numpy as np
import torch
from torch import nn

from improved_gan import frechet_distance, gaussian_statistics, inception_score, load_dataset


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128),
        )  # fmt: skip
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        features = self.body(x)  # (N, 128): the Frechet distance's features
        return self.head(features), features


def load_images(path):
    x = np.load(path)
    x = x[x.files[0]] if isinstance(x, np.lib.npyio.NpzFile) else x
    x = torch.from_numpy(np.asarray(x))
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return x.unsqueeze(1) if x.dim() == 3 else x  # (N, C, H, W) in [0, 1]


@torch.no_grad()
def outputs(net, x, batch_size=500):
    net.eval()
    parts = [net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat([p[0] for p in parts]).softmax(1).double(), torch.cat([p[1] for p in parts])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", default=None, help=".npy/.npz array (default: a noisy copy of test images)"
    )
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the system one)")
    parser.add_argument(
        "--steps", type=int, default=500, help="training steps of the classifier if none given"
    )
    parser.add_argument("--classifier", default=None, help="a state dict of Classifier saved by --save")
    parser.add_argument("--save", default=None, help="save the classifier trained here")
    parser.add_argument(
        "--inception-weights", default=None, help="the 2015 Inception-v3 weights (RGB images)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)

    data = load_dataset("fmnist", data_dir=args.data_dir)
    real_test = data.test_images.float() / 255  # (N, 1, 28, 28)
    if args.images is not None:
        mine = load_images(args.images)
    else:
        print("no --images: scoring test images with noise added, as a stand-in for your samples")
        mine = (real_test + 0.3 * torch.randn_like(real_test)).clamp(0, 1)

    if args.inception_weights is not None:  # the paper's network, for RGB images
        from improved_gan.metrics.inception import InceptionScorer

        mean, std = InceptionScorer(args.inception_weights).score(mine)  # needs (N, 3, H, W)
        print(f"Inception Score {mean:.3f} +- {std:.3f} over {len(mine)} images")
        return

    net = Classifier()
    if args.classifier is not None:
        net.load_state_dict(torch.load(args.classifier, weights_only=True))
    else:
        print(
            f"no --classifier: training one for {args.steps} steps (a briefly trained net: compare scores only with scores from this same net)"
        )
        x, y = data.train_images.float() / 255, data.train_labels
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(args.steps):
            i = torch.randint(len(x), (128,))
            loss = nn.functional.cross_entropy(net(x[i])[0], y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if args.save:
            torch.save(net.state_dict(), args.save)

    probs, features = outputs(net, mine)
    real_probs, real_features = outputs(net, real_test)
    score, score_std = inception_score(probs, splits=10)  # paper §4: 10 in-order splits
    ceiling, _ = inception_score(real_probs, splits=10)
    mu, sigma = gaussian_statistics(features)
    mu_real, sigma_real = gaussian_statistics(real_features)
    print(
        f"classifier score {score:.3f} +- {score_std:.3f} of {len(mine)} images (real test images: {ceiling:.3f})"
    )
    print(f"Frechet distance to the real test set: {frechet_distance(mu, sigma, mu_real, sigma_real):.3f}")


if __name__ == "__main__":
    main()
