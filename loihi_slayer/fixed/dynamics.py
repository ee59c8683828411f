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

    Written without branches (selects only) so that the compiler can step many
    neurons at once in vector registers (:mod:`.codegen`'s lane loop).
    """
    # synaptic input: exponent on the sum (floor if negative), then << 6
    syn = ((a << max(wgt_exp, 0)) >> max(-wgt_exp, 0)) * 64
    du = u * (4096 - i_decay)
    u = ((((du + ((du >> 63) & 4095)) >> 12) + syn + STATE_MAX) & MASK24) - STATE_MAX
    dv = v * (4096 - v_decay)
    v_pre = min(max(((dv + ((dv >> 63) & 4095)) >> 12) + u + bias, -STATE_MAX), STATE_MAX)
    # refractory: u keeps integrating, v is held at 0 and cannot spike
    refractory = rc > 0
    v_pre = 0 if refractory else v_pre
    spike = 0 if refractory else (1 if v_pre > v_th else 0)
    rc = rc - 1 if refractory else (ref_delay - 1 if spike != 0 else 0)
    return u, 0 if spike != 0 else v_pre, rc, spike, v_pre


def cuba_rests(u, v, rc, bias, v_th):
    """Whether a CUBA-LIF neuron in state ``(u, v, rc)`` with effective ``bias`` and
    threshold ``v_th`` stays at rest while its input is 0: zero state, no bias and
    ``v_th >= 0``. Then :func:`cuba_step` with ``a = 0`` returns ``(0, 0, 0, 0, 0)`` for
    every decay, refractory delay and weight exponent (``0 > v_th`` fails), so a kernel
    may write a quiet neuron's zero outputs without stepping it."""
    return u == 0 and v == 0 and rc == 0 and bias == 0 and v_th >= 0


# sigma-delta modes
MODE_DELTA = 0  # input layer: a = a_in << (E+S), then delta encoding
MODE_SIGMA_DELTA = 1  # sigma += a_in; a = act(sigma + bias); delta encoding
MODE_SIGMA = 2  # sigma += a_in; output sigma


def sdnn_step(mode, x, sigma, act, residue, error, v_th, bias, shift, state_exp, relu, cum_error):
    """One sigma-delta step (lava-nc's legacy residue model).

    Returns ``(sigma, act, residue, error, payload)`` where ``payload`` is the
    graded output ``floor(s / 2**state_exp)`` (``sigma`` itself in sigma mode,
    where ``act``, ``residue`` and ``error`` stay as they are). Written with
    selects only, like :func:`cuba_step`, so that lanes of neurons vectorise.
    """
    accumulate = mode == MODE_SIGMA
    new_sigma = sigma if mode == MODE_DELTA else sigma + x
    a = new_sigma + bias
    a = max(a, 0) if relu != 0 else a
    a = x << shift if mode == MODE_DELTA else a
    d = a - act + residue
    # cumulative error: the accumulated error decides, and is cleared by a spike
    acc_error = error + d if cum_error != 0 else error
    level = acc_error if cum_error != 0 else d
    s = d if max(level, -level) >= v_th else 0
    acc_error = 0 if (cum_error != 0 and s != 0) else acc_error
    return (
        new_sigma,
        act if accumulate else a,
        residue if accumulate else d - s,
        error if accumulate else acc_error,
        new_sigma if accumulate else s >> state_exp,
    )
