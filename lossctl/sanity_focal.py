"""Baselines of the focal losses, which have no closed form (see sanity_baselines for the other losses).

Multi-class: the prior minimises sum_c a_c f(p_c) over the simplex, f(p) = -(1 - p)^gamma log p. f is convex on
(0, 1] for gamma >= 0 (f'' = g''h + 2g'h' + gh'' with g = (1 - p)^gamma, h = -log p; for gamma < 1 the one
negative term is outweighed since -log p <= (1 - p) / p), so the KKT conditions a_c f'(p_c) = lambda are
sufficient; they are solved by bisection on lambda, each p_c by bisection on log p.
Sigmoid: each column's constant logit minimises a sum of convex functions of p (0/1 targets), by golden-section
search over the logit; for soft targets the cost is assumed unimodal.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha_pair(alpha: float) -> tuple[float, float]:
    """(weight of a positive, of a negative); torchvision: alpha < 0 weighs both by 1."""
    return (alpha, 1.0 - alpha) if alpha >= 0 else (1.0, 1.0)


def _focal_f(logp: np.ndarray, log1mp: np.ndarray, gamma: float) -> np.ndarray:
    """f(p) = -(1 - p)^gamma log p, from log p and log(1 - p) (stable near 0 and 1)."""
    return -np.exp(gamma * log1mp) * logp if gamma else -logp


def focal_index(counts: np.ndarray, w: np.ndarray, alpha: float, gamma: float):
    """Multi-class focal: mean over kept targets of alpha' w_y f(p_y); the prior solves a_c f'(p_c) = lambda."""
    scale = alpha if alpha >= 0 else 1.0
    a = scale * w * counts
    denom = float(counts.sum())
    n_classes = len(w)
    with np.errstate(divide="ignore"):  # one class: log(1 - 1) = -inf, and f(1) = 0
        uniform = float(a.sum()) * float(_focal_f(np.log(1 / n_classes), np.log1p(-1 / n_classes), gamma)) / denom
    p = _focal_simplex_minimiser(a, gamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(a > 0, a * _focal_f(np.log(p), np.log1p(-p), gamma), 0.0)
    return {"uniform": uniform, "prior": float(cost.sum()) / denom}, p


def _focal_grad(p: np.ndarray, gamma: float) -> np.ndarray:
    """f'(p) = gamma (1 - p)^(gamma - 1) log p - (1 - p)^gamma / p, increasing on (0, 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(p < 1, gamma * np.power(1 - p, gamma - 1) * np.log(p), 0.0) if gamma else 0.0
        return first - np.power(1 - p, gamma) / p


def _focal_simplex_minimiser(a: np.ndarray, gamma: float) -> np.ndarray:
    """argmin over the simplex of sum_c a_c f(p_c): closed form for gamma = 0, else nested bisection on lambda."""
    live = a > 0
    if not live.any():  # alpha 0, or no target of a class with weight: every prediction costs 0
        return np.full(len(a), 1.0 / len(a))
    if gamma == 0 or live.sum() <= 1:
        return a / a.sum()
    values, inverse = np.unique(a[live], return_inverse=True)  # equal a_c share p_c: solve once per value

    def p_of(lam: float) -> np.ndarray:  # f'^{-1}(lam / a), by bisection on log p
        lo, hi = np.full(len(values), -700.0), np.zeros(len(values))
        for _ in range(80):
            mid = (lo + hi) / 2
            below = _focal_grad(np.exp(mid), gamma) < lam / values
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return np.exp((lo + hi) / 2)

    def mass(lam: float) -> float:
        return float(p_of(lam)[inverse].sum())

    lam_hi = float(values.min() * _focal_grad(np.array(0.5), gamma))  # every p_c >= 1/2: the mass is >= 1
    lam_lo = lam_hi * 2
    while mass(lam_lo) > 1:
        lam_lo *= 2
    for _ in range(100):  # bisection on log(-lambda)
        lam = -math.sqrt(lam_lo * lam_hi)
        lam_lo, lam_hi = (lam, lam_hi) if mass(lam) < 1 else (lam_lo, lam)
    p = np.zeros(len(a))
    p[live] = p_of(-math.sqrt(lam_lo * lam_hi))[inverse]
    return p / p.sum()


def focal_sigmoid(cols: np.ndarray, alpha: float, gamma: float):
    """Sigmoid focal (torchvision): mean over elements of alpha_t (1 - p_t)^gamma BCE; prior per column of the
    (rows, columns) targets."""
    if np.all((cols == 0) | (cols == 1)):  # 0/1 labels: a column's cost needs only its two counts
        return focal_sigmoid_counts(cols.sum(axis=0), len(cols), alpha, gamma)
    return _focal_sigmoid(cols, np.ones_like(cols), cols.size, alpha, gamma)


def focal_sigmoid_counts(positives: np.ndarray, rows: int, alpha: float, gamma: float):
    """focal_sigmoid of 0/1 labels from each column's count of positives among `rows`: all a stream needs."""
    positives = np.asarray(positives, dtype=np.float64)
    return _focal_sigmoid(np.array([[1.0], [0.0]]), np.stack([positives, rows - positives]), rows * positives.size,
                          alpha, gamma)


def _focal_sigmoid(labels: np.ndarray, mult: np.ndarray, elements: int, alpha: float, gamma: float):
    """uniform and prior of sum over rows of mult * focal(constant logit z per column; labels) / elements."""
    pos, neg = _alpha_pair(alpha)

    def cost(z: np.ndarray) -> np.ndarray:  # per-column summed loss of the constant logits z (columns,)
        logp, log1mp = -np.logaddexp(0, -z), -np.logaddexp(0, z)
        p = np.exp(logp)
        p_t = p * labels + (1 - p) * (1 - labels)
        bce = -(labels * logp + (1 - labels) * log1mp)
        alpha_t = pos * labels + neg * (1 - labels)
        return (mult * alpha_t * np.power(1 - p_t, gamma) * bce).sum(axis=0)

    columns = mult.shape[1]
    uniform = float(cost(np.zeros(columns)).sum()) / elements
    z = _golden_min(cost, columns)
    return {"uniform": uniform, "prior": float(cost(z).sum()) / elements}, 1 / (1 + np.exp(-z))


def _golden_min(cost, n: int, lo: float = -60.0, hi: float = 60.0, steps: int = 100) -> np.ndarray:
    """Per-column minimiser of a unimodal cost over logits in [lo, hi], by golden-section search."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = np.full(n, lo), np.full(n, hi)
    for _ in range(steps):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        left = cost(c) <= cost(d)
        a, b = np.where(left, a, c), np.where(left, d, b)
    return (a + b) / 2
