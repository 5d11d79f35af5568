"""Minibatch discrimination (Salimans et al., 2016, section 3.2): a layer of D that sees the whole batch.

| symbol | here | shape |
|---|---|---|
| f(x_i) | ``x`` (flattened from dim 1) | (N, A) |
| T | ``.T`` | (A, B, C) |
| M_i = f(x_i) T | ``M`` | (N, B, C) |
| c_b(x_i, x_j) = exp(-\\|M_{i,b} - M_{j,b}\\|_{L1}) | (never stored whole) | |
| o(x_i)_b = sum_j c_b(x_i, x_j) | ``o`` | (N, B) |

Output: ``cat([f(x), o(x) + bias], dim=1)``, shape (N, A + B). The sum runs over the examples of the batch
passed in, so real and generated samples are meant to be separate batches.

Reference code (openai/improved-gan, ``mnist_svhn_cifar10/nn.py``, ``MinibatchLayer``) and how it is followed:

- the sum excludes j = i (``exclude_self=True``, the default; the paper's form, with the constant
  c_b(x_i, x_i) = 1, is ``exclude_self=False``). The reference adds 1e6 to the self distance; here it is set
  to infinity, so the self term is exactly 0 (subtracting 1 from the full sum would round away terms below
  float32's resolution near 1);
- T is weight-normalised over A with a learned log-scale per (b, c):
  ``T[:, b, c] = exp(log_scale[b, c]) * theta[:, b, c] / ||theta[:, b, c]||_2`` (``weight_norm=True``);
  ``weight_norm=False`` uses a plain tensor T = theta, as in the paper;
- theta ~ N(0, 0.05), log_scale = 0, bias = -1 (one per kernel; ``bias=False`` drops it);
- its data-dependent init (run by :func:`~improved_gan.nn.data_dependent_init`) rescales each kernel b so that
  half the batch mean of the nearest-neighbour L1 distance ``min_{j != i} ||M_{i,b} - M_{j,b}||_1`` is 1, then
  sets bias so that o + bias has batch mean 0. The same is done here.

Cost: the naive broadcast builds an (N, N, B, C) tensor, O(N^2 B C) memory. Here the pairwise L1 distances
are computed by ``torch.cdist(p=1)`` in blocks of kernels (and of rows, for large N) holding at most
``_block_elements`` entries of the (B, N, N) distance array; the backward pass recomputes them blockwise
instead of saving them. Time O(N^2 B C) for forward and for backward; memory O(N B C) saved for backward plus
O(block C) workspace. Only first derivatives are supported (no double backward).

Precision: the layer always computes in at least float32, also inside ``torch.autocast`` (bfloat16 or float16):
f(x) and T are multiplied with autocast disabled, in float32 (float64 if the input or T is float64), and
the output has the input's dtype. Under bfloat16 the projection M = f(x) T would carry 8 bits of mantissa
into distances that are differences of nearby values, and ``torch.cdist`` has no bfloat16 kernel.

Distances are clamped at ``_MAX_DISTANCE`` = 87 before ``exp(-d)``: float32 ``exp`` of arguments below -87.3
(results below the smallest normal number, 1.2e-38) takes a slow path on x86 CPUs, about 700x slower per
element on this project's machine (``torch.set_flush_denormal`` does not help), and trained kernels can produce
such distances. A clamped pair contributes exp(-87) = 1.6e-38 instead of less than 1.2e-38 (float32 rounds
most of those to 0), and its gradient term is of the same size: errors far below float32's resolution
of any sum it enters.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from improved_gan.nn.weight_norm import DataDependentInit

_THETA_INIT_STD = 0.05  # reference code: theta=Normal(0.05)
_MAX_DISTANCE = 87.0  # exp(-87) = 1.6e-38 is still a normal float32 (see the module docstring)


def _block_elements(device: torch.device) -> int:
    # CPU: blocks of 2^20 distances (4 MiB in float32). On 2 idle cores 2^18 was up to 15% faster, but each
    # block costs ~15 parallel regions, and on a busy machine (threads waiting for a descheduled sibling) 2^20
    # was 1.3-3x faster; with one thread the two were within 15% of each other (N = 256..1024).
    # Accelerators: large blocks amortise kernel launches.
    return 2**20 if device.type == "cpu" else 2**24


def _blocks(num_kernels: int, n: int, budget: int) -> Iterator[tuple[slice, slice]]:
    """(kernel slice, row slice) pairs covering (B, N) with at most ``budget`` distances per block."""
    if n * n <= budget:
        kernels, rows = max(1, budget // (n * n)), n
    else:
        kernels, rows = 1, max(1, budget // n)
    for b in range(0, num_kernels, kernels):
        for r in range(0, n, rows):
            yield slice(b, b + kernels), slice(r, r + rows)


def _working_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or float64 if one of ``tensors`` is float64: the layer never computes in 16 bits."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _no_autocast(t: torch.Tensor):
    """Autocast off for ``t``'s device type (the layer's products and distances stay in full precision)."""
    return torch.autocast(t.device.type, enabled=False)


def _set_self_pairs(D: torch.Tensor, rows: slice, value: float) -> None:
    """In a block D (b, r, N) of distances from rows ``rows`` to all N examples, set each row's self pair."""
    idx = torch.arange(rows.start, rows.start + D.shape[1], device=D.device)  # (r,)
    D[:, idx - rows.start, idx] = value


class _PairwiseLaplaceSum(torch.autograd.Function):
    """``o[i, b] = sum_j exp(-||M[i, b] - M[j, b]||_1)`` from M (N, B, C), over all j or all j != i.

    Gradient (K = exp(-D) is symmetric):
    ``dL/dM[k,b,c] = -sum_j (g[k,b] + g[j,b]) K[k,j,b] sign(M[k,b,c] - M[j,b,c])``; the self pair contributes
    0 (sign(0) = 0) whether or not it is excluded, since its term is a constant (1 or 0). It is what
    ``aten._cdist_backward`` (p = 1) computes for the symmetric incoming gradient.
    """

    @staticmethod
    def forward(ctx, M: torch.Tensor, exclude_self: bool) -> torch.Tensor:
        with _no_autocast(M):
            return _PairwiseLaplaceSum._forward(ctx, M, exclude_self)

    @staticmethod
    def _forward(ctx, M: torch.Tensor, exclude_self: bool) -> torch.Tensor:
        X = M.detach().transpose(0, 1).contiguous()  # (B, N, C)
        num_kernels, n, _ = X.shape
        out = X.new_empty(num_kernels, n)  # (B, N)
        for ks, rs in _blocks(num_kernels, n, _block_elements(X.device)):
            D = torch.cdist(X[ks, rs], X[ks], p=1).clamp_(max=_MAX_DISTANCE)  # (b, r, N)
            if exclude_self:
                _set_self_pairs(D, rs, float("inf"))  # exp(-inf) = 0 exactly
            out[ks, rs] = D.neg_().exp_().sum(dim=-1)  # (b, r)
        ctx.save_for_backward(X)
        return out.t()  # (N, B)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (X,) = ctx.saved_tensors  # (B, N, C)
        with _no_autocast(X):
            return _PairwiseLaplaceSum._backward(X, grad_out.to(X.dtype))

    @staticmethod
    def _backward(X: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        g = grad_out.t()  # (B, N)
        grad = torch.empty_like(X)  # (B, N, C)
        for ks, rs in _blocks(X.shape[0], X.shape[1], _block_elements(X.device)):
            rows, cols = X[ks, rs].contiguous(), X[ks]  # (b, r, C), (b, N, C)
            K = torch.cdist(rows, cols, p=1).clamp_(max=_MAX_DISTANCE).neg_().exp_()  # (b, r, N)
            W = (g[ks, rs, None] + g[ks, None, :]).mul_(K).neg_()  # (b, r, N): dL/dD for the symmetric pair
            # (b, r, C): sum_j W[:, :, j] sign(rows - cols[j]); the distances argument is unused for p=1
            grad[ks, rs] = torch.ops.aten._cdist_backward(W, rows, cols, 1.0, K)
        return grad.transpose(0, 1), None  # (N, B, C)


def minibatch_similarity(M: torch.Tensor, *, exclude_self: bool = True) -> torch.Tensor:
    """Section 3.2: ``o[i, b] = sum_j exp(-sum_c |M[i,b,c] - M[j,b,c]|)``, M (N, B, C) -> o (N, B).

    ``exclude_self`` drops the j = i term (which would be exactly 1). Never builds the (N, N, B, C) tensor
    (see the module docstring for the cost). A bfloat16 or float16 ``M`` is computed in float32 and the
    result returned in ``M``'s dtype.
    """
    if M.dim() != 3:
        raise ValueError(f"minibatch_similarity: expected M of shape (N, B, C), got {tuple(M.shape)}")
    work = _working_dtype(M)
    return _PairwiseLaplaceSum.apply(M.to(work), exclude_self).to(M.dtype)  # (N, B)


class MinibatchDiscrimination(DataDependentInit, nn.Module):
    """Minibatch discrimination layer (paper §3.2): ``(N, in_features) -> (N, out_features)``.

    ``out_features = in_features + num_kernels``: the input features followed by ``o(x_i)_b + bias_b``, the
    closeness of example i to the other examples of its batch in each kernel b. Put it before D's last
    layer and pass real and generated data as separate batches. Its output couples the examples of a batch,
    so evaluate D (e.g. its test accuracy) in batches of the training batch size.

    Initialisation: call :func:`~improved_gan.nn.data_dependent_init` on D with a batch of real data before
    training, as the reference code does; it scales the kernels so that nearest-neighbour distances are
    about 2 and sets the bias so that ``o + bias`` has batch mean 0. It is optional: without it the layer
    keeps theta ~ N(0, 0.05), log-scale 0 and bias -1, whose ``o + bias`` depends on the scale of the
    features (often a few units rather than 0, i.e. large inputs to D's last layer); the first training
    forward without it warns once and says the batch mean it sees.

    Args:
        in_features: A, the size of f(x); inputs with more dims are flattened from dim 1.
        num_kernels: B; default 100 (the reference CIFAR-10 model's).
        kernel_dim: C; default 5 (the reference's).
        exclude_self: drop j = i from the sum (default True, the reference code); False gives the paper's sum
            over all j (each o then includes the constant 1).
        bias: learn one bias per kernel, initialised to -1 (reference code); default True.
        weight_norm: parametrise T by direction theta and log-scale (reference code; default True);
            False: T = theta.

    Attributes:
        in_features, num_kernels, kernel_dim, out_features: A, B, C and A + B.
        theta: ``(A, B, C)`` parameter; ``log_scale``: ``(B, C)`` or None; ``bias``: ``(B,)`` or None.
        initialized: boolean buffer, set by :func:`~improved_gan.nn.data_dependent_init`.
    """

    def __init__(
        self,
        in_features: int,
        num_kernels: int = 100,
        kernel_dim: int = 5,
        *,
        exclude_self: bool = True,
        bias: bool = True,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        if min(in_features, num_kernels, kernel_dim) < 1:
            raise ValueError(
                "MinibatchDiscrimination: in_features, num_kernels and kernel_dim must be >= 1, got "
                f"{in_features}, {num_kernels}, {kernel_dim}"
            )
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        self.out_features = in_features + num_kernels
        self.exclude_self = exclude_self
        self.theta = nn.Parameter(torch.randn(in_features, num_kernels, kernel_dim) * _THETA_INIT_STD)
        log_scale = nn.Parameter(torch.zeros(num_kernels, kernel_dim)) if weight_norm else None  # (B, C)
        self.register_parameter("log_scale", log_scale)
        bias_init = nn.Parameter(torch.full((num_kernels,), -1.0)) if bias else None  # (B,)
        self.register_parameter("bias", bias_init)
        self.register_buffer("initialized", torch.tensor(False))
        self._init_checked = False  # transient: the first training forward checked `initialized` (warns once)

    @property
    def T(self) -> torch.Tensor:
        """The ``(A, B, C)`` tensor that forward uses, ``exp(log_scale) * theta / ||theta||`` (norm over A),
        or ``theta`` with ``weight_norm=False``."""
        if self.log_scale is None:
            return self.theta
        scale = self.log_scale.exp() / torch.linalg.vector_norm(self.theta, dim=0)  # (B, C)
        return self.theta * scale  # (A, B, C)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() < 2:
            shape = tuple(x.shape)
            raise ValueError(f"MinibatchDiscrimination: expected input (N, {self.in_features}), got {shape}")
        x = x.flatten(1)  # (N, A)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"MinibatchDiscrimination: expected {self.in_features} features per example, got {x.shape[1]}"
            )
        with _no_autocast(x):  # full precision even inside torch.autocast (module docstring)
            T = self.T.reshape(self.in_features, -1)  # (A, B*C)
            xw = x.to(_working_dtype(x, T))
            M = (xw @ T.to(xw.dtype)).reshape(x.shape[0], self.num_kernels, self.kernel_dim)  # (N, B, C)
        return x, M

    def init_from_batch(self, x: torch.Tensor) -> None:
        """Reference data-dependent init on ``x`` ``(N, A)``, N >= 2: rescale each kernel so that the batch
        mean of the nearest-neighbour L1 distance is 2, then set ``bias`` so that ``o + bias`` has batch mean 0.

        Called by :func:`~improved_gan.nn.data_dependent_init` (under ``torch.no_grad``); not meant to be
        called directly."""
        x, M = self._features(x)
        n = x.shape[0]
        if n < 2:
            raise ValueError("MinibatchDiscrimination: data-dependent init needs at least 2 examples")
        X = M.transpose(0, 1).contiguous()  # (B, N, C)
        nearest = X.new_empty(self.num_kernels, n)  # (B, N)
        for ks, rs in _blocks(self.num_kernels, n, _block_elements(X.device)):
            D = torch.cdist(X[ks, rs], X[ks], p=1)  # (b, r, N)
            _set_self_pairs(D, rs, float("inf"))
            nearest[ks, rs] = D.amin(dim=-1)
        half_mean = 0.5 * nearest.mean(dim=1)  # (B,)
        # A kernel whose rows are all equal (distance 0) keeps its scale.
        half_mean = torch.where(half_mean > 0, half_mean, torch.ones_like(half_mean))
        if self.log_scale is None:
            self.theta.div_(half_mean[None, :, None])
        else:
            self.log_scale.sub_(half_mean.log()[:, None])
        self._center_bias(x)

    def _center_bias(self, x: torch.Tensor) -> None:
        """After the kernels are rescaled: set the bias so that ``o + bias`` has batch mean 0 on ``x``."""
        if self.bias is not None:
            _, M = self._features(x)
            o = minibatch_similarity(M, exclude_self=self.exclude_self)  # (N, B)
            self.bias.copy_(-o.mean(dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, A)`` (or ``(N, *)``, flattened from dim 1 to A features) -> ``(N, A + B)``:
        ``cat([x, o + bias], dim=1)`` with ``o[i, b] = sum_{j != i} exp(-||M[i,b] - M[j,b]||_1)``, M = x T.

        The sum runs over the N examples passed in: one example's output depends on the whole batch. Computed
        in at least float32 (also under ``torch.autocast``); the output has ``x``'s dtype.
        """
        self._maybe_data_dependent_init(x)
        x, M = self._features(x)  # (N, A), (N, B, C); M in float32 or float64
        with _no_autocast(M):
            o = minibatch_similarity(M, exclude_self=self.exclude_self)  # (N, B)
            if self.bias is not None:
                o = o + self.bias.to(o.dtype)
        if not self._init_checked and self.training and torch.is_grad_enabled():
            self._warn_if_uninitialized(o)
        return torch.cat([x, o.to(x.dtype)], dim=1)  # (N, A + B)

    def _warn_if_uninitialized(self, o: torch.Tensor) -> None:
        self._init_checked = True  # one look per layer: reading the buffer synchronises an accelerator
        if not bool(self.initialized):
            mean = float(o.detach().mean())
            warnings.warn(
                f"MinibatchDiscrimination: trained before its data-dependent init; o + bias has batch mean "
                f"{mean:.3g} here (the init makes it 0 and scales the kernels to the data): call "
                "`data_dependent_init(D, x_real)` once before training",
                stacklevel=5,  # the caller of D(x): this, forward, Module._call_impl, _wrapped_call_impl
            )

    def extra_repr(self) -> str:
        """The text inside ``repr(layer)``: its sizes and options."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}, "
            f"exclude_self={self.exclude_self}, bias={self.bias is not None}, "
            f"weight_norm={self.log_scale is not None}"
        )
