"""Anderson mixing: an accelerated solver for a fixed point x = G(x).

Plain iteration x <- G(x) converges at the rate of G's Jacobian, which is close to 1
on stiff inversion steps. Anderson mixing keeps the last few iterates x_i and their
residuals f_i = G(x_i) - x_i and takes the combination whose (linearised) residual is
smallest:

    gamma = argmin || f_n - dF gamma ||,   dF = [f_{i+1} - f_i],  dG = [g_{i+1} - g_i]
    x_new = g_n - dG gamma,                g_i = x_i + f_i = G(x_i)

On a linear G it is GMRES in disguise; each update costs no model call. Every batch
element is its own problem and gets its own coefficients.
"""

from __future__ import annotations

import torch


class AndersonMixer:
    """Proposes the next iterate from the history of (x_i, f_i); ``depth`` 0 is plain iteration."""

    def __init__(self, depth: int = 4):
        if depth < 0:
            raise ValueError(f"Anderson depth must be >= 0, got {depth}")
        self.depth = depth
        self._x: list[torch.Tensor] = []   # flattened (B, N) float64 iterates
        self._f: list[torch.Tensor] = []   # and their residuals

    def next(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Record (x, f = G(x) - x) and return the proposed next x, shaped and typed like x."""
        shape, dtype = x.shape, x.dtype
        xf = x.reshape(shape[0], -1).double()
        ff = f.reshape(shape[0], -1).double()
        self._x = (self._x + [xf])[-(self.depth + 1):]
        self._f = (self._f + [ff])[-(self.depth + 1):]
        g = xf + ff
        if len(self._x) > 1:
            d_f = torch.stack([b - a for a, b in zip(self._f, self._f[1:])], dim=-1)        # (B, N, m)
            d_g = torch.stack([(xb + fb) - (xa + fa) for xa, fa, xb, fb in
                               zip(self._x, self._f, self._x[1:], self._f[1:])], dim=-1)
            gamma = _least_squares(d_f, ff)                                                 # (B, m)
            g = g - (d_g @ gamma.unsqueeze(-1)).squeeze(-1)
        return g.reshape(shape).to(dtype)


def _least_squares(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per batch element, gamma minimising ||b - a gamma|| (a: (B, N, m), b: (B, N)).

    Solved on the small m x m normal equations with a pseudo-inverse, so that nearly
    parallel or vanishing residual differences (converged iterations) give a bounded gamma.
    """
    ata = a.transpose(1, 2) @ a                                       # (B, m, m)
    atb = a.transpose(1, 2) @ b.unsqueeze(-1)                         # (B, m, 1)
    return (torch.linalg.pinv(ata, rtol=1e-12, hermitian=True) @ atb).squeeze(-1)
