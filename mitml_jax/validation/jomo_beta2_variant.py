"""Diagnostic variant of jomo's kernel whose beta2 step is the full conditional (SBC evidence only).

jomo (``jomo2comC.c``) and :mod:`mitml_jax.kernels.jomo` (step 4) draw the level-2 fixed effects
by GLS with the marginal block ``Psi_ww``, ignoring the level-1 random effects ``u1``. Given
``u1`` the level-2 residuals are ``u_w | u1 ~ N(c u1, s^2)`` with ``c = Psi_w1 Psi_11^-1``,
``s^2 = Psi_ww - c Psi_1w``, so the full conditional (flat prior) is
``beta2 ~ N((X2'X2)^-1 X2'(w - u1 c'), s^2 (X2'X2)^-1)``.

:func:`build_conditional_beta2_kernel` returns jomo's kernel with only that step replaced, so a
simulation-based calibration run can tell whether the step explains a miscalibration. It does so
without copying the kernel: while the kernel is traced, the call of ``draw_regression`` that
receives ``arrays.x2tx2_inv`` (step 4) is redirected to the full conditional, with the sweep's
``u1``, ``Psi`` and ``X2`` captured from the wrapper. Not for production use.
"""

from __future__ import annotations

import contextlib

from ..kernels import jomo
from ..kernels.jomo_linalg import chol, chol_solve

__all__ = ["build_conditional_beta2_kernel"]

_original_draw_regression = jomo.draw_regression


@contextlib.contextmanager
def _redirect(state, arrays, d1):
    def draw(key, xtx_inv, xtx_inv_chol, xty, cov):
        if xtx_inv is not arrays.x2tx2_inv:
            return _original_draw_regression(key, xtx_inv, xtx_inv_chol, xty, cov)
        psi, u1, x2 = state.psi, state.u1, arrays.x2
        p11, p1w, pww = psi[:d1, :d1], psi[:d1, d1:], psi[d1:, d1:]
        c = chol_solve(chol(p11), p1w).T  # (r2, d1)
        s2 = pww - c @ p1w
        xty_cond = xty - x2.T @ (u1 @ c.T)
        return _original_draw_regression(key, xtx_inv, xtx_inv_chol, xty_cond, 0.5 * (s2 + s2.T))

    jomo.draw_regression = draw
    try:
        yield
    finally:
        jomo.draw_regression = _original_draw_regression


def build_conditional_beta2_kernel(config):
    """jomo's sweep for ``config`` with the full-conditional beta2 step (see the module docstring)."""
    inner = jomo.build_kernel(config)
    d1 = config.d1

    def kernel(key, state, arrays, prior):
        with _redirect(state, arrays, d1):
            return inner(key, state, arrays, prior)

    return kernel
