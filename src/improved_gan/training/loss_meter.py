"""Sums of per-step scalars between two evaluations, and the first step at which one was not finite.

A :class:`LossMeter` knows nothing of GANs: each step hands it named 0-dim tensors (and host floats such as the
learning rate); an evaluation asks for the means since the previous one (:meth:`LossMeter.pop_means`) and for the
first non-finite value (:meth:`LossMeter.divergence`).

Two ways to keep the sums, with the same means and the same divergence record:

- ``on_device=False`` (the CPU): every value is read with ``.item()`` as it arrives (cheap on the CPU) and
  summed in Python floats;
- ``on_device=True`` (CUDA): the step's tensors are stacked into one float64 tensor added to a device-side sum,
  and a device-side record ``(step, index, value)`` of the first non-finite value is updated with ``torch.where``.
  Nothing is read back to the host during the step (no ``.item()``, no ``bool()``, no indexing with a device
  tensor); the sums are read once per evaluation or checkpoint.

The sums and their count are part of a checkpoint (:meth:`LossMeter.state_dict`), so that the means logged after a
resume equal those of an uninterrupted run.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class LossMeter:
    """Running sums of named scalars since the last :meth:`pop_means`, kept on the host or on ``device``.

    Args:
        device: where the step's tensors live.
        on_device: keep the tensor sums on ``device`` (no host read per step) rather than as Python floats.
    """

    def __init__(self, device: torch.device | str = "cpu", *, on_device: bool = False) -> None:
        self.device = torch.device(device)
        self.on_device = on_device
        self.sums: dict[str, float] = {}  # host sums, in the order the names first arrived
        self.count = 0  # steps added since the last pop_means()
        #: ``(step, name, value)`` of the first non-finite value read so far, else None
        self.diverged: tuple[int, str, float] | None = None
        self._dev_sums: torch.Tensor | None = None  # (L,) float64 on the device
        self._dev_names: tuple[str, ...] = ()
        self._dev_bad: torch.Tensor | None = (
            None  # (3,) float64: step, index into _bad_names, value; step < 0: none
        )
        self._bad_names: tuple[str, ...] = ()
        self._host_sums: dict[
            str, float
        ] = {}  # on_device: the host floats (e.g. lr) not yet merged into `sums`
        self._order: list[str] = []  # names in the order they first arrived since the last pop_means()

    def add(self, step: int, values: dict[str, torch.Tensor | float]) -> dict[str, Any]:
        """Add one step's values, each a 0-dim tensor or a host float; :meth:`pop_means` keeps their order.

        Returns the values by name, in the same order: Python floats when ``on_device`` is off, the host floats
        and the detached 0-dim tensors (not read) when it is on.
        """
        self.count += 1
        for k in values:
            if k not in self._order:
                self._order.append(k)
        if not self.on_device:
            out = {k: v.item() if isinstance(v, torch.Tensor) else float(v) for k, v in values.items()}
            for k, v in out.items():
                self.sums[k] = self.sums.get(k, 0.0) + v
                if self.diverged is None and not math.isfinite(v):
                    self.diverged = (step, k, v)
            return out
        tensors = {k: v.detach() for k, v in values.items() if isinstance(v, torch.Tensor)}
        for k, v in values.items():
            if k not in tensors:
                self._host_sums[k] = self._host_sums.get(k, 0.0) + v
                if self.diverged is None and not math.isfinite(v):
                    self.diverged = (step, k, v)
        stacked = torch.stack([v.double() for v in tensors.values()])  # (L,) summed in float64
        names = tuple(tensors)
        if self._dev_sums is None or self._dev_names != names:
            self._flush_tensors()
            self._dev_names = names
            self._dev_sums = torch.zeros_like(stacked)
            if self._dev_bad is None:
                self._dev_bad = torch.full((3,), -1.0, dtype=torch.float64, device=stacked.device)
        self._dev_sums += stacked
        if self.diverged is None:
            bad = ~torch.isfinite(stacked)  # (L,)
            first = bad.to(torch.int64).argmax()  # index of the first non-finite value (0 if none)
            new = bad.any() & (self._dev_bad[0] < 0)
            # torch.full passes the step as a kernel argument (no copy); gather reads stacked[first] on the
            # device (indexing with the 0-dim tensor `first` would be an implicit .item(), a synchronisation)
            at = torch.full((1,), float(step), dtype=torch.float64, device=stacked.device)
            value = stacked.gather(0, first.reshape(1))  # (1,)
            record = torch.cat([at, first.double().reshape(1), value])  # (3,)
            self._dev_bad = torch.where(new, record, self._dev_bad)
            self._bad_names = names
        return {k: tensors.get(k, v) for k, v in values.items()}

    def _flush_tensors(self) -> None:
        """Merge the device-side sums and the pending host floats into :attr:`sums` (one read from the device)."""
        merged = dict(self._host_sums)
        if self._dev_sums is not None:
            merged.update(zip(self._dev_names, self._dev_sums.tolist()))
            self._dev_sums = None
        for k, v in merged.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self._host_sums = {}
        self.sums = {k: self.sums[k] for k in [*self._order, *self.sums] if k in self.sums}

    def divergence(self) -> tuple[int, str, float] | None:
        """``(step, name, value)`` of the first non-finite value added, or None. With ``on_device`` this reads
        the device-side record (a host synchronisation: call it at evaluations, not every step)."""
        if self.diverged is None and self._dev_bad is not None:
            step, index, value = self._dev_bad.tolist()
            if step >= 0:
                self.diverged = (int(step), self._bad_names[int(index)], float(value))
        return self.diverged

    def flushed_sums(self) -> dict[str, float]:
        """The sums since the last :meth:`pop_means`, read to the host."""
        self._flush_tensors()
        return dict(self.sums)

    def pop_means(self) -> dict[str, float]:
        """Mean of each value since the previous call (or the start), then reset the sums and the count."""
        means = {k: v / max(self.count, 1) for k, v in self.flushed_sums().items()}
        self.sums, self.count, self._order = {}, 0, []
        return means

    def state_dict(self) -> dict[str, Any]:
        """``{"loss_sums": {name: float}, "loss_count": int}`` (the keys a checkpoint has always used)."""
        return {"loss_sums": self.flushed_sums(), "loss_count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {k: float(v) for k, v in state["loss_sums"].items()}
        self._order = list(self.sums)
        self.count = int(state["loss_count"])
        self._dev_sums, self._host_sums = None, {}
