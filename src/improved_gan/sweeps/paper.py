"""The published figures of "Improved Techniques for Training GANs" (Salimans et al., NeurIPS 2016).

Each value is ``(mean, spread)`` as printed in the paper: the spread is the standard deviation the paper gives
beside the mean ("+-"); the semi-supervised results are over 10 runs with random labelled subsets. The
docs page "Presets and the reference code" (``docs/presets-and-reference.md``) says where each figure comes from
and how the figures were checked.

- Table 1 (permutation-invariant MNIST): the number of misclassified test examples out of 10,000, by the total
  number of labels. :data:`MNIST_ERRORS` holds those counts; :data:`PAPER_ERROR_PCT` holds them as percentages
  (count / 100).
- Table 2 (CIFAR-10): test error in %, by the total number of labels (the single-model row).
- SVHN (section 5.3): test error in %, by the total number of labels.
- Table 3 (CIFAR-10 Inception scores of the ablation): score by variant, "real data" the ceiling.
"""

from __future__ import annotations

#: Table 1, "number of incorrectly classified test examples" (of 10,000), feature matching, by labels.
MNIST_ERRORS: dict[int, tuple[float, float]] = {
    20: (1677.0, 452.0),
    50: (221.0, 136.0),
    100: (93.0, 6.5),
    200: (90.0, 4.2),
}

#: Test error in % by data set and total number of labels (MNIST converted from counts of 10,000).
PAPER_ERROR_PCT: dict[str, dict[int, tuple[float, float]]] = {
    "mnist": {n: (m / 100.0, s / 100.0) for n, (m, s) in MNIST_ERRORS.items()},
    "cifar10": {1000: (21.83, 2.01), 2000: (19.61, 2.09), 4000: (18.63, 2.32), 8000: (17.72, 1.82)},
    "svhn": {500: (18.44, 4.8), 1000: (8.11, 1.3), 2000: (6.16, 0.58)},
}

#: Where each data set's figures are printed in the paper.
PAPER_SOURCE: dict[str, str] = {
    "mnist": "Table 1 of the paper (errors of 10,000 test images, shown here as %)",
    "cifar10": "Table 2 of the paper (test error %, one model)",
    "svhn": "section 5.3 of the paper (SVHN test error %)",
}

#: Table 3: Inception scores on CIFAR-10 (50,000 samples) by ablation variant, as the paper names them.
TABLE3_INCEPTION: dict[str, tuple[float, float]] = {
    "real data": (11.24, 0.12),
    "all techniques": (8.09, 0.07),
    "-vbn+bn": (7.54, 0.07),
    "-l+ha": (6.86, 0.06),
    "-ls": (6.83, 0.06),
    "-l": (4.36, 0.04),
    "-mbf": (3.87, 0.03),
}
