"""Semi-supervised Fashion-MNIST with 100 labels: your own discriminator as a K+1-class classifier (paper §5),
the generator trained by feature matching (§3.1).

D outputs K = 10 logits; the generated class's logit is fixed at 0, so the loss needs nothing else. After
training, D's argmax is the classifier (the paper's recipe reaches ~70 % after 1,000 steps here; see the README).

    python examples/semi_supervised.py --steps 1000
"""

import argparse

import torch
from torch import nn

from improved_gan import (
    GaussianNoise,
    WeightNormLinear,
    data_dependent_init,
    feature_matching_loss,
    labeled_subset,
    load_dataset,
    semi_supervised_losses,
)


class Discriminator(nn.Module):
    """An MLP with Gaussian noise layers and weight normalisation, as the reference MNIST model."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(
            GaussianNoise(0.3), WeightNormLinear(784, 500), nn.ReLU(),
            GaussianNoise(0.5), WeightNormLinear(500, 250), nn.ReLU(),
            GaussianNoise(0.5),
        )  # fmt: skip
        self.head = WeightNormLinear(250, num_classes)

    def forward(self, x):
        features = self.body(x.flatten(1))  # (N, 250): what feature matching matches
        return self.head(features), features  # (N, K) logits, features


def make_generator(z_dim=100):
    return nn.Sequential(
        nn.Linear(z_dim, 500), nn.BatchNorm1d(500), nn.Softplus(),
        nn.Linear(500, 500), nn.BatchNorm1d(500), nn.Softplus(),
        nn.Linear(500, 784), nn.Sigmoid(),
    )  # fmt: skip


@torch.no_grad()
def accuracy(D, x, y, batch_size=500):
    D.eval()
    correct = sum(
        (D(x[i : i + batch_size])[0].argmax(1) == y[i : i + batch_size]).sum().item()
        for i in range(0, len(x), batch_size)
    )
    D.train()
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the system one)")
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    torch.manual_seed(1)

    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    x_train, y_train = data.train_images.float() / 255, data.train_labels  # (N, 1, 28, 28), (N,)
    x_test, y_test = data.test_images.float() / 255, data.test_labels
    lab = labeled_subset(y_train, args.labels_per_class, seed=1)  # class-balanced: 100 labels by default
    x_lab, y_lab = x_train[lab], y_train[lab]
    print(f"{len(lab)} labelled examples, {len(x_train)} unlabelled, {len(x_test)} test")

    D, G = Discriminator(), make_generator()
    data_dependent_init(D, x_train[torch.randperm(len(x_train))[:500]])  # weight-norm init, as the reference
    opt_d = torch.optim.Adam(D.parameters(), lr=3e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=3e-3, betas=(0.5, 0.999))
    n = args.batch_size

    for step in range(1, args.steps + 1):
        i = torch.randint(len(lab), (n,))
        x_unl = x_train[torch.randint(len(x_train), (n,))]
        with torch.no_grad():
            fake = G(torch.rand(n, 100)).view(-1, 1, 28, 28)
        loss_lab, loss_unl = semi_supervised_losses(D(x_lab[i])[0], y_lab[i], D(x_unl)[0], D(fake)[0])
        loss_d = loss_lab + 0.5 * loss_unl  # the reference code's weight 0.5 for the unlabelled part
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

        # G: match the mean of D's features on real data (feature matching, §3.1)
        _, f_fake = D(G(torch.rand(n, 100)).view(-1, 1, 28, 28))
        with torch.no_grad():
            _, f_real = D(x_train[torch.randint(len(x_train), (n,))])
        loss_g = feature_matching_loss(f_real, f_fake, distance="mse")
        opt_g.zero_grad()
        loss_g.backward()  # also fills D's .grad, which opt_d.zero_grad() clears before D's next step
        opt_g.step()
        if step % 100 == 0 or step == args.steps:
            print(
                f"step {step}: loss_lab {loss_lab.item():.3f} loss_unl {loss_unl.item():.3f} loss_g {loss_g.item():.4f}"
            )

    print(
        f"test accuracy {100 * accuracy(D, x_test, y_test):.2f}% with {len(lab)} labels after {args.steps} steps"
    )


if __name__ == "__main__":
    main()
