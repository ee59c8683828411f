r"""A float64 exponential of non-positive arguments that LLVM vectorises.

The surrogate gradients are exponentials of non-positive arguments
(:math:`e^{-|v - \theta| / \tau}`). numba calls libm's scalar ``exp`` for
``math.exp``, which stops a loop from being vectorised (no SVML here), so
:func:`exp_nonpos` computes it from arithmetic alone:

.. math::

    k = \lfloor x \log_2 e + \tfrac12 \rfloor, \qquad
    r = (x - k\,\ln 2_{hi}) - k\,\ln 2_{lo}, \qquad |r| \le \tfrac12 \ln 2, \\
    e^x = 2^k \sum_{i=0}^{13} \frac{r^i}{i!}

(Cody and Waite's reduction with fdlibm's two-part :math:`\ln 2`; the Taylor
remainder is below :math:`4 \cdot 10^{-18}` relative; the terms from :math:`r^2` on by
Estrin's scheme, four multiply-adds deep instead of twelve, since the ALIF and
resonator scans wait on its latency where it is called inside them). :math:`2^k` is built from its
bits, :math:`2^{k+128}` times :math:`2^{-128}`, so a result below the normal range
(:math:`x < -708.4`) is rounded once, as a correctly rounded ``ldexp`` would.
Within one unit in the last place of NumPy's ``exp`` (tested); ``-inf`` and
arguments below :math:`\ln 2^{-1075}` give 0, ``nan`` gives ``nan``.

It is one self-contained scalar function: the CPU kernels inline it (a flat loop
over it runs about 4x faster than ``math.exp``'s on 2 AVX-512 cores), so the resonator
row kernels and the fused recurrence's surrogate pass (:mod:`._resonator_bwd`) get the
same bits; the ``numba.cuda`` kernels compile the same Python function as a device
function (:mod:`._resonator_cuda`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["exp_nonpos"]

_LOG2E = 1.4426950408889634
#: ln 2 in two parts: ``k * _LN2_HI`` is exact for ``|k| < 2**20`` (fdlibm's split)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: arguments are clamped here: below ``ln(2**-1075) = -745.13`` every result rounds to
#: 0, and ``k >= -1097`` keeps ``k + _BIAS`` a normal exponent
_FLOOR = -760.0
#: exponent bias of ``2**(k + 128)``, undone by :data:`_UNSCALE`
_BIAS = 1023 + 128
_UNSCALE = 2.0**-128
#: Taylor coefficients ``1/i!``, ``i = 2 .. 13``
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = (
    1.0 / math.factorial(i) for i in range(2, 14)
)


@njit(cache=True)
def exp_nonpos(x: float) -> float:
    """``exp(x)`` for ``x <= 0``, ``-inf`` or ``nan`` (float64, see the module
    docstring); a positive ``x`` would overflow the exponent bits."""
    xc = x if x >= _FLOOR else _FLOOR  # nan goes to the floor here and is restored below
    k = math.floor(xc * _LOG2E + 0.5)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    # sum_{i>=2} r**(i-2) / i! by Estrin's scheme (four multiply-adds deep, not twelve: a
    # scalar scan that calls this per step waits on its latency), then two Horner steps,
    # which keep the rounding of the leading terms small
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    lo = (_C2 + _C3 * r) + (_C4 + _C5 * r) * r2
    mid = (_C6 + _C7 * r) + (_C8 + _C9 * r) * r2
    hi = (_C10 + _C11 * r) + (_C12 + _C13 * r) * r2
    p = (lo + mid * r4) + hi * r8
    p = 1.0 + r * (1.0 + r * p)
    scale = np.int64((np.int64(k) + _BIAS) << 52).view(np.float64)
    y = p * scale * _UNSCALE
    return y if x == x else x
