"""What theory predicts for GD and the heavy ball on a quadratic, to draw beside what a grid measured.

On a loss whose Hessian is constant with eigenvalues in ``[mu, L]``
(``kappa = L / mu``), e.g. ``gdjax.quadratic(k)`` and the least-squares
regressions:

- GD is stable for ``lr < 2 / L`` and fastest at ``2 / (L + mu)``, contracting
  the error by ``(kappa - 1) / (kappa + 1)`` a step.
- The heavy ball (``optax.sgd(lr, momentum=beta)`` with a constant rate:
  ``v = g + beta v; x = x - lr v``) is stable for ``0 <= beta < 1`` and
  ``0 < lr < 2 (1 + beta) / L``, fastest at ``lr* = 4 / (sqrt(L) +
  sqrt(mu))**2``, ``beta* = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))**2``,
  contracting by ``(sqrt(kappa) - 1) / (sqrt(kappa) + 1)``. At that point the
  iteration matrix has a repeated eigenvalue, so the error decays like
  ``t rho**t``: finite-time counts come out below the asymptotic ratio.

Nothing here holds for a scheduled rate, Adam, or a loss that is not quadratic.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from gdjax.problems import Problem


@dataclasses.dataclass(frozen=True)
class Curvature:
    """The extreme eigenvalues of a constant Hessian, and what follows from them."""

    L: float
    mu: float

    @property
    def kappa(self) -> float:
        return self.L / self.mu

    @property
    def gd_stability_limit(self) -> float:
        return 2 / self.L

    @property
    def gd_optimal_rate(self) -> float:
        return 2 / (self.L + self.mu)

    def heavy_ball_limit(self, beta):
        """The largest stable rate at momentum ``beta``: ``2 (1 + beta) / L``."""
        return 2 * (1 + np.asarray(beta)) / self.L

    @property
    def heavy_ball_optimum(self) -> tuple[float, float]:
        """``(lr*, beta*)``: the fastest asymptotic contraction."""
        root_kappa = np.sqrt(self.kappa)
        return 4 / (np.sqrt(self.L) + np.sqrt(self.mu)) ** 2, ((root_kappa - 1) / (root_kappa + 1)) ** 2

    @property
    def predicted_speedup(self) -> float:
        """GD's steps at its optimum over the heavy ball's at its (about sqrt(kappa))."""
        root_kappa = np.sqrt(self.kappa)
        return np.log((root_kappa + 1) / (root_kappa - 1)) / np.log((self.kappa + 1) / (self.kappa - 1))


def curvature(problem: Problem) -> Curvature:
    """L and mu of ``problem``'s constant Hessian: as its ``facts`` declare, else ``measured_curvature``.

    A Hessian that is not positive definite is refused (ValueError).
    """
    if problem.facts.curvature is None:
        return measured_curvature(problem)
    L, mu = problem.facts.curvature
    if mu <= 0:
        raise ValueError(f"{problem.name}: its Hessian is not positive definite (smallest {mu:.3g})")
    return Curvature(L=float(L), mu=float(mu))


def measured_curvature(problem: Problem) -> Curvature:
    """L and mu of ``problem``'s Hessian (float64), which must be constant (a quadratic loss).

    The Hessian is computed at the problem's start and at a second point;
    a loss whose Hessian differs there, or is not positive definite, is
    refused (ValueError): the theory would not apply.
    """
    if problem.loss_takes_key:
        raise ValueError(f"{problem.name}: a stochastic loss has no fixed Hessian")
    with jax.enable_x64(True):
        start, unravel = ravel_pytree(jax.tree.map(lambda x: np.asarray(x, np.float64), problem.init(0)))

        def loss(flat):
            return problem.loss(unravel(flat), problem.X, problem.y)

        hessian = np.asarray(jax.hessian(loss)(start))
        elsewhere = np.asarray(jax.hessian(loss)(start + 1.0))
    if not np.allclose(hessian, elsewhere, rtol=1e-9, atol=1e-12 * np.abs(hessian).max()):
        raise ValueError(
            f"{problem.name}: its Hessian is not constant (not a quadratic loss); no theory applies"
        )
    eigenvalues = np.linalg.eigvalsh((hessian + hessian.T) / 2)
    if eigenvalues[0] <= 0:
        raise ValueError(
            f"{problem.name}: its Hessian is not positive definite (smallest {eigenvalues[0]:.3g})"
        )
    return Curvature(L=float(eigenvalues[-1]), mu=float(eigenvalues[0]))
