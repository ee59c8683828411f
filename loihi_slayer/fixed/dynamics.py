"""The integer neuron dynamics, written once as plain scalar Python.

These step functions are the single source of truth of the fast kernels:
``cpu.py`` compiles them with ``numba.njit`` and ``cuda.py`` with
``numba.cuda.jit(device=True)``. Each is self-contained (int64 scalar arithmetic
and module-level integer constants only) so that both compilers accept it.
The slow NumPy reference in ``reference.py`` is written independently from the
spec, and the tests compare the two bit for bit.

Arithmetic idioms used below (all on int64, ``>>`` is an arithmetic shift):

- ``(x + ((x >> 63) & 4095)) >> 12`` divides by 4096 rounding toward zero
  (``sign(x) * (|x| >> 12)``), the rounding of every Loihi decay.
- ``((x + STATE_MAX) & MASK24) - STATE_MAX`` wraps into ``(-2**23, 2**23]``,
  the asymmetric 24-bit current wrap of lava-nc's bit-accurate LIF (for values
  within one wrap of the range it is exactly lava-nc's conditional subtraction;
  beyond that it keeps wrapping modulo ``2**24`` as a 24-bit register does).
"""

from __future__ import annotations

STATE_MAX = 8388607  # 2**23 - 1: voltage saturation bound
MASK24 = 16777215  # 2**24 - 1


def cuba_step(u, v, rc, a, i_decay, v_decay, v_th, ref_delay, bias, wgt_exp):
    """One CUBA-LIF step.

    Parameters are scalars: state ``u, v``, remaining refractory steps ``rc``,
    synaptic sum ``a``, decays, effective threshold ``v_th = vThMant << 6``,
    refractory delay, effective bias and weight exponent.

    Returns ``(u, v, rc, spike, v_pre)``: new current, new (post-reset) voltage,
    remaining refractory steps, spike (0/1) and the voltage before the reset
    (0 during refractory steps).
    """
    # synaptic input: exponent on the sum (floor if negative), then << 6
    if wgt_exp >= 0:
        syn = a * (1 << wgt_exp) * 64
    else:
        syn = (a >> (-wgt_exp)) * 64
    du = u * (4096 - i_decay)
    u = ((((du + ((du >> 63) & 4095)) >> 12) + syn + STATE_MAX) & MASK24) - STATE_MAX
    if rc > 0:
        # refractory: u keeps integrating, v is held at 0 and cannot spike
        return u, 0, rc - 1, 0, 0
    dv = v * (4096 - v_decay)
    v = ((dv + ((dv >> 63) & 4095)) >> 12) + u + bias
    if v > STATE_MAX:
        v = STATE_MAX
    elif v < -STATE_MAX:
        v = -STATE_MAX
    if v > v_th:
        return u, 0, ref_delay - 1, 1, v
    return u, v, 0, 0, v


# sigma-delta modes
MODE_DELTA = 0  # input layer: a = a_in << (E+S), then delta encoding
MODE_SIGMA_DELTA = 1  # sigma += a_in; a = act(sigma + bias); delta encoding
MODE_SIGMA = 2  # sigma += a_in; output sigma


def sdnn_step(mode, x, sigma, act, residue, error, v_th, bias, shift, state_exp, relu, cum_error):
    """One sigma-delta step (lava-nc's legacy residue model).

    Returns ``(sigma, act, residue, error, payload)`` where ``payload`` is the
    graded output ``floor(s / 2**state_exp)`` (``sigma`` itself in sigma mode).
    """
    if mode == 2:
        sigma = sigma + x
        return sigma, act, residue, error, sigma
    if mode == 0:
        a = x * (1 << shift)
    else:
        sigma = sigma + x
        a = sigma + bias
        if relu != 0 and a < 0:
            a = 0
    d = a - act + residue
    s = d - d  # typed zero
    if cum_error != 0:
        error = error + d
        if (error if error >= 0 else -error) >= v_th:
            s = d
        if s != 0:
            error = error - error
    elif (d if d >= 0 else -d) >= v_th:
        s = d
    return sigma, a, d - s, error, s >> state_exp
