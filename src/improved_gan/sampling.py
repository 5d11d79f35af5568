"""The one sampler of a generator: :func:`generate`, used by the training loop's evaluation and sample grids,
``improved-gan evaluate``, ``improved-gan score RUN`` and ``improved-gan sample``.

Evaluation samples are drawn with :data:`EVAL_SEED` in every path, so ``evaluate``, ``score`` on a run folder
and the training loop score the same samples of the same weights.
"""

from __future__ import annotations

import torch

#: Seed of the fixed z of the sample grids (successive grids of a run are comparable).
GRID_SEED = 12345
#: Seed of the samples that metrics are computed on (training evaluation, ``evaluate``, ``score RUN``).
EVAL_SEED = GRID_SEED + 1


@torch.no_grad()
def generate(
    G: torch.nn.Module,
    n: int,
    *,
    seed: int,
    batch_size: int = 500,
    device=None,
    vbn_reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """``n`` samples of generator ``G`` from ``seed``: float32 on the CPU, in the model's output range.

    z is drawn with ``G.sample_z`` from one CPU ``torch.Generator`` seeded ``seed``, ``batch_size`` rows at a
    time (so the numbers depend on ``batch_size``; the default 500 is what every entry point uses), and fed to
    ``G`` in eval mode on ``device`` (default: where ``G``'s parameters are). ``vbn_reference`` (a z batch):
    first recompute the virtual-batch-norm reference statistics (paper §3.5) of the CURRENT weights from it.
    ``G`` is returned to its previous train/eval mode. Output (n, C, H, W) images or (n, 2) points.
    """
    if device is None:
        device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    was_training = G.training
    G.eval()
    try:
        if vbn_reference is not None:
            from improved_gan.nn.virtual_batchnorm import virtual_batch_reference

            with virtual_batch_reference(G):
                G(vbn_reference)
        out = []
        for i in range(0, n, batch_size):
            z = G.sample_z(min(batch_size, n - i), generator=gen).to(device)
            out.append(G(z).float().cpu())
    finally:
        G.train(was_training)
    return torch.cat(out)
