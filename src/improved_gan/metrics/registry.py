"""The public Python entry of the metric suite: :func:`compute_metrics` and :func:`real_data_ceiling`.

Both are thin: they check the samples as the command line does (:mod:`.inputs`) and call
:func:`improved_gan.metrics.suite.compute`, where each metric is declared (its keys, parameters and meaning are
listed on the API page of the documentation).
"""

from __future__ import annotations

import torch

from improved_gan._dataset_names import TOY_DATASET_NAMES
from improved_gan.metrics.inputs import array_to_samples
from improved_gan.metrics.references import REFERENCE_SEED
from improved_gan.metrics.suite import (
    METRICS,
    Metric,
    available_metrics,
    canonical_dataset,
    compute,
    default_metrics,
    default_num_samples,
    report_keys,
)


def as_samples(samples, dataset: str | None, *, value_range=None, layout=None, source: str = "samples"):
    """Samples of ``dataset`` as the suite takes them: points (N, 2) for a 2-D mixture, else images in any of
    the accepted forms (:mod:`improved_gan.metrics.inputs`); InputError (a ValueError) naming them otherwise."""
    rows = None if dataset is None else dataset in TOY_DATASET_NAMES
    s = array_to_samples(samples, source, value_range=value_range, layout=layout, rows=rows)
    if rows and s.features.shape[1] != 2:
        raise ValueError(f"{source}: {dataset} metrics take 2-D points (N, 2), got {tuple(s.features.shape)}")
    return s


def compute_metrics(
    names,
    samples,
    *,
    dataset: str | None,
    data_dir=None,
    device="cpu",
    reference=None,
    value_range: str | None = None,
    layout: str | None = None,
    shard: bool = False,
    **options,
) -> dict[str, float]:
    """Evaluate the metrics ``names`` (None: :func:`default_metrics` of ``dataset``) on ``samples``.

    Args:
        names: metric names or aliases (``classifier_fd`` = ``classifier_fid``, ``is`` = ``inception_score``).
        samples: images, tensor or array: uint8 in [0, 255], or float in [0, 1], [-1, 1] or [0, 255]; shaped
            (N, C, H, W), (N, H, W, C) or (N, H, W) with C = 1 or 3. The range and layout are detected where
            unambiguous, else name them (``value_range="-1,1"``, ``layout="nhwc"``); otherwise ValueError.
            For a 2-D mixture (``ring8``, ``grid25``): points (N, 2).
        dataset: the data set the samples imitate (aliases accepted); it picks the defaults, the classifier
            and the default reference. None: rows (N, D) or images compared with ``reference``.
        data_dir: where real data splits are read (the default references of KID, precision/recall, FID).
        reference: what FD, KID and precision/recall compare with: a reference name (``"cifar10-train"``,
            ``"fmnist-test"``), or images/rows in the forms of ``samples``; None: the suite's default.
        shard: under torch.distributed, split feature extraction across ranks (all pass the same samples).
        options: the metric parameters (``splits``, ``kid_subsets``, ``kid_subset_size``, ``k``, ``num_std``,
            ``min_count``) and network settings (``classifier_path``, ``inception_weights``,
            ``inception_backend``, ``batch_size``).

    Returns:
        A flat dict of floats (``modes`` is an int) in the order of ``names`` and of each metric's keys.

    Raises:
        UserError: an unknown metric, or one that does not apply to ``dataset``.
        ValueError: samples of no accepted form, or too few for a metric (an ``InputError``).
        TypeError: an unknown option.
    """
    dataset = canonical_dataset(dataset) if dataset is not None else None
    s = as_samples(samples, dataset, value_range=value_range, layout=layout)
    if reference is not None and not isinstance(reference, str):
        reference = as_samples(reference, dataset, value_range=value_range, layout=layout, source="reference")
    result = compute(
        names,
        s,
        reference=reference,
        dataset=dataset,
        data_dir=data_dir,
        device=device,
        shard=shard,
        **options,
    )
    return result.values


def real_data_ceiling(
    dataset: str, names=None, *, num_samples=None, data_dir=None, device="cpu", seed=0, **options
) -> dict[str, float]:
    """The metrics of REAL data, the ceiling that generated samples are compared with.

    - ``classifier_score``: the first ``num_samples`` test images (the classifier never trained on them);
    - ``classifier_fid``, ``classifier_kid``, ``classifier_pr``: a seeded random subset of ``num_samples``
      training images against the test set, i.e. exactly the protocol applied to generated samples;
    - ``inception_score``: the first ``num_samples`` training images (the paper's 11.24 is CIFAR-10 train);
    - 2-D mixtures: ``num_samples`` points drawn from the mixture itself with ``torch.Generator(seed)``.
    """
    from improved_gan.metrics.suite import parse_names

    dataset = canonical_dataset(dataset)
    names = parse_names(names) or default_metrics(dataset)
    n = num_samples or default_num_samples(dataset)
    common = dict(dataset=dataset, data_dir=data_dir, device=device, **options)
    if dataset in TOY_DATASET_NAMES:
        from improved_gan.data import load_toy

        points = load_toy(dataset).sample(n, torch.Generator().manual_seed(seed))  # (n, 2)
        return compute_metrics(names, points, **common)
    from improved_gan.data import load_dataset

    data = load_dataset(dataset, data_dir=data_dir)
    results: dict[str, float] = {}
    for name in names:
        if name == "classifier_score":
            images = torch.as_tensor(data.test_images)[:n]
        elif METRICS[name].space == "classifier":
            train = torch.as_tensor(data.train_images)
            images = train[torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:n]]
        else:
            images = torch.as_tensor(data.train_images)[:n]
        results.update(compute_metrics([name], images, **common))  # uint8 (n, C, H, W)
    return results


__all__ = [
    "METRICS",
    "REFERENCE_SEED",
    "Metric",
    "as_samples",
    "available_metrics",
    "compute_metrics",
    "default_metrics",
    "default_num_samples",
    "real_data_ceiling",
    "report_keys",
]
