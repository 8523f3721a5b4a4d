"""Fixed quadrature rules on [0, 1]: captum's four Riemann rules and Gauss-Legendre, and the authors' scheme
(``linspace`` with both ends, a plain mean)."""

from __future__ import annotations

import logging

import numpy as np

from tracesieve.choices import METHODS, QUADRATURE_RULES

logger = logging.getLogger(__name__)


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha`` in [0, 1] and weights of the rule; the weights of every rule sum to 1.

    ``authors_linspace`` reproduces the authors' code: ``linspace(0, 1, steps)`` with both ends and the
    plain mean of the gradients. ``riemann_trapezoid`` is the true trapezoid rule, weights 1/(steps-1) with
    halved ends; captum's rule of that name uses 1/steps, so its weights sum to (steps-1)/steps and its
    attributions are smaller by that factor.
    """
    if method not in QUADRATURE_RULES:
        raise ValueError(f"Unknown integration method {method!r}; choose one of {', '.join(METHODS)}")
    minimum_steps = 2 if method in ("riemann_trapezoid", "authors_linspace") else 1
    if steps < minimum_steps:
        raise ValueError(f"method {method!r} needs at least {minimum_steps} steps, got {steps}")
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    uniform = np.full(n, 1.0 / n)
    if method == "riemann_left":
        return np.arange(n) / n, uniform
    if method == "riemann_right":
        return np.arange(1, n + 1) / n, uniform
    if method == "riemann_middle":
        return (np.arange(n) + 0.5) / n, uniform
    if method == "riemann_trapezoid":
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, n), weights
    return np.linspace(0.0, 1.0, n), uniform  # authors_linspace
