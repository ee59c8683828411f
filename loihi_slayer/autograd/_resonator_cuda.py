"""numba.cuda kernel of the resonator backward: :func:`._resonator_bwd.backward_row`, one
thread per row. Imported lazily; nothing is compiled at import.
"""

from __future__ import annotations

from numba import cuda

from ._resonator_bwd import backward_row

_row = cuda.jit(device=True)(backward_row)


@cuda.jit
def backward(
    g_s,
    g_re,
    g_im,
    re,
    im,
    thr,
    spk,
    theta,
    tau,
    rho,
    graded,
    mode,
    sin_d,
    cos_d,
    re0,
    im0,
    im_reset,
    g_xre,
    g_xim,
    g_sin,
    g_cos,
):
    n = cuda.grid(1)
    if n < re.shape[0]:
        _row(
            n,
            g_s,
            g_re,
            g_im,
            re,
            im,
            thr,
            spk,
            theta,
            tau,
            rho,
            graded,
            mode,
            sin_d,
            cos_d,
            re0,
            im0,
            im_reset,
            g_xre,
            g_xim,
            g_sin,
            g_cos,
        )
