"""Where the loss comes from: sums per class (or per label column) and the K worst targets, both mergeable.

Like `reduce.Partial`, each is built per chunk, file or shard from per-target values and added up; the table is
made at the end. Ignored targets (target == ignore_index) are left out of both.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from .errors import ShapeError, UsageError
from .losses._common import check_classes
from .sanity_baselines import label_columns


@dataclass
class ByClassPartial:
    """Per class c (or label column c for BCE): targets counted, loss summed, correct predictions, and the sum of
    the probability the model gave the target. Arrays of shape (C,); counts int64, sums float64."""

    count: np.ndarray
    loss_sum: np.ndarray
    correct: np.ndarray
    p_target_sum: np.ndarray

    @classmethod
    def empty(cls, n_classes: int) -> ByClassPartial:
        return cls(np.zeros(n_classes, np.int64), np.zeros(n_classes), np.zeros(n_classes, np.int64),
                   np.zeros(n_classes))

    @classmethod
    def of_index(cls, losses, target, predicted, p_target, *, n_classes: int,
                 ignore_index: int | None = -100) -> ByClassPartial:
        """Index targets (CE, NLL, focal): per-target losses, targets, argmax predictions and p of the target,
        all of the target's shape (as torch's reduction='none' gives them)."""
        t = np.asarray(target).reshape(-1)
        arrays = [np.asarray(a).reshape(-1) for a in (losses, predicted, p_target)]
        if any(a.size != t.size for a in arrays):
            raise ShapeError(f"per-target losses, predictions and p_target need one value per target ({t.size})")
        check_classes("target", t, n_classes, ignore_index)
        keep = t != ignore_index if ignore_index is not None else np.ones(t.size, dtype=bool)
        t = t[keep].astype(np.int64)
        loss, pred, p_t = (a[keep] for a in arrays)
        return cls(np.bincount(t, minlength=n_classes).astype(np.int64),
                   np.bincount(t, weights=loss.astype(np.float64), minlength=n_classes),
                   np.bincount(t, weights=(pred == t), minlength=n_classes).astype(np.int64),
                   np.bincount(t, weights=p_t.astype(np.float64), minlength=n_classes))

    @classmethod
    def of_labels(cls, losses, target, p) -> ByClassPartial:
        """BCE-style targets, per label column (the last axis; a 0-d or 1-D array is one column): per-element
        losses, targets in [0, 1] and predicted probabilities p. Correct: (p > 0.5) == (target > 0.5);
        p_target: p y + (1 - p)(1 - y), the probability of the true label."""
        y = label_columns(np.asarray(target, dtype=np.float64))
        loss, prob = (label_columns(np.asarray(a, dtype=np.float64)) for a in (losses, p))
        if loss.shape != y.shape or prob.shape != y.shape:
            raise ShapeError(f"losses, targets and p need the same shape; got {np.shape(losses)}, "
                             f"{np.shape(target)}, {np.shape(p)}")
        correct = ((prob > 0.5) == (y > 0.5)).sum(axis=0)
        return cls(np.full(y.shape[1], y.shape[0], np.int64), loss.sum(axis=0), correct.astype(np.int64),
                   (prob * y + (1 - prob) * (1 - y)).sum(axis=0))

    def __add__(self, other: ByClassPartial) -> ByClassPartial:
        if len(self.count) != len(other.count):
            raise ShapeError(f"by-class sums of {len(self.count)} and {len(other.count)} classes do not add up")
        return ByClassPartial(self.count + other.count, self.loss_sum + other.loss_sum,
                              self.correct + other.correct, self.p_target_sum + other.p_target_sum)

    def to_dict(self) -> dict[str, list]:
        return {"count": self.count.tolist(), "loss_sum": self.loss_sum.tolist(), "correct": self.correct.tolist(),
                "p_target_sum": self.p_target_sum.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> ByClassPartial:
        return cls(np.asarray(d["count"], np.int64), np.asarray(d["loss_sum"], np.float64),
                   np.asarray(d["correct"], np.int64), np.asarray(d["p_target_sum"], np.float64))


def by_class_rows(partial: ByClassPartial, total_loss: float | None = None, *,
                  include_empty: bool = False) -> list[dict]:
    """One row per class: {"class", "count", "loss" (mean over its targets), "share" (of total_loss, the sum of
    all per-target losses; default: the sum over the partial), "accuracy", "p_target" (mean probability given
    to it)}. Classes without targets are left out unless include_empty (then their means are nan)."""
    total = float(partial.loss_sum.sum()) if total_loss is None else float(total_loss)
    rows = []
    for c, n in enumerate(partial.count.tolist()):
        if n == 0 and not include_empty:
            continue
        loss = float(partial.loss_sum[c])
        rows.append({"class": c, "count": n, "loss": _mean(loss, n), "share": loss / total if total else math.nan,
                     "accuracy": _mean(float(partial.correct[c]), n),
                     "p_target": _mean(float(partial.p_target_sum[c]), n)})
    return rows


def _mean(total: float, n: int) -> float:
    return total / n if n else math.nan


class WorstK:
    """The k highest per-target losses seen so far, with their full index; a bounded min-heap.

    Order: highest loss first; equal losses by lower flat index first (deterministic whatever the chunking).
    NaN ranks above every number (it is the first thing to look at). Ignored targets are skipped.
    Adding two WorstK keeps the min of their k, so the merge of shards is exact.
    """

    def __init__(self, k: int, *, ignore_index: int | None = -100):
        if k < 1:
            raise UsageError(f"must be at least 1; got {k}", option="--worst")
        self.k = k
        self.ignore_index = ignore_index
        self._heap: list[tuple] = []  # (rank, -flat index, loss, index, target, predicted, p_target)

    def push(self, losses, flat_indices_offset: int, index_shape, targets, predicted, p_target) -> None:
        """Per-target values of one chunk, flattened in C order; the chunk's first target has flat index
        flat_indices_offset in the whole target array. index_shape is the targets' shape; only its trailing axes
        are used, so a chunk's shape serves as well as the whole file's."""
        loss = np.asarray(losses, dtype=np.float64).reshape(-1)
        t, pred, p_t = (np.asarray(a).reshape(-1) for a in (targets, predicted, p_target))
        rank = np.where(np.isnan(loss), np.inf, loss)
        cand = np.flatnonzero(t != self.ignore_index) if self.ignore_index is not None else np.arange(loss.size)
        if cand.size > self.k:  # a chunk's own top k, ties at the k-th value all kept for the index order
            kth = np.partition(rank[cand], cand.size - self.k)[cand.size - self.k]
            cand = cand[rank[cand] >= kth]
        cand = cand[np.lexsort((cand, -rank[cand]))][: self.k]
        inner = tuple(int(d) for d in tuple(index_shape)[1:])
        for i in cand.tolist():
            flat = int(flat_indices_offset) + i
            item = (float(rank[i]), -flat, float(loss[i]), _full_index(flat, inner), t[i].item(), pred[i].item(),
                    float(p_t[i]))
            self._offer(item)

    def _offer(self, item: tuple) -> None:
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def shifted(self, rows: int, per_row: int) -> WorstK:
        """The same entries for a file that follows `rows` rows of `per_row` targets each: its indices become those
        of the files taken together, as a total over many files reports them."""
        out = WorstK(self.k, ignore_index=self.ignore_index)
        for rank, neg_flat, loss, index, t, pred, p_t in self._heap:
            out._heap.append((rank, neg_flat - rows * per_row, loss, (index[0] + rows, *index[1:]) if index else
                              index, t, pred, p_t))
        heapq.heapify(out._heap)
        return out

    def __add__(self, other: WorstK) -> WorstK:
        merged = WorstK(min(self.k, other.k), ignore_index=self.ignore_index)
        for item in self._heap + other._heap:
            merged._offer(item)
        return merged

    def rows(self) -> list[dict]:
        """[{"index" (list of ints), "target", "predicted", "p_target", "loss"}], highest loss first."""
        return [{"index": list(it[3]), "target": it[4], "predicted": it[5], "p_target": it[6], "loss": it[2]}
                for it in sorted(self._heap, key=lambda it: it[:2], reverse=True)]

    def to_dict(self) -> dict:
        return {"k": self.k, "ignore_index": self.ignore_index,
                "items": [[it[2], -it[1], list(it[3]), it[4], it[5], it[6]] for it in self._heap]}

    @classmethod
    def from_dict(cls, d: dict) -> WorstK:
        worst = cls(int(d["k"]), ignore_index=d["ignore_index"])
        for loss, flat, index, target, predicted, p_t in d["items"]:
            rank = math.inf if math.isnan(loss) else float(loss)
            worst._offer((rank, -int(flat), float(loss), tuple(index), target, predicted, float(p_t)))
        return worst


def _full_index(flat: int, inner: tuple[int, ...]) -> tuple[int, ...]:
    """np.unravel_index without the first axis' length: the row is flat // prod(inner)."""
    size = math.prod(inner)
    row, rest = divmod(flat, size) if size else (flat, 0)
    return (row, *(int(i) for i in np.unravel_index(rest, inner))) if inner else (row,)

