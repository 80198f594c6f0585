"""Smooth radial and angular basis functions (DimeNet / GemNet).

All functions are written directly in torch so that they are twice differentiable
with respect to the inputs (forces and their derivatives come from autograd).

References
----------
Gasteiger, Groß, Günnemann 2020, "Directional Message Passing for Molecular Graphs"
(DimeNet), eqs. 7-8; Gasteiger, Becker, Günnemann 2021, "GemNet: Universal Directional
Graph Neural Networks for Molecules", Sec. 5 / Appendix (radial Bessel and spherical
Fourier-Bessel bases with a polynomial envelope).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff u(x), x = d / cutoff (DimeNet eq. 8 without the 1/x factor, as in GemNet).

    u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2) for x < 1, else 0.
    u(1) = u'(1) = u''(1) = 0, so energies, forces and force derivatives are continuous
    when an edge crosses the cutoff.
    """

    def __init__(self, exponent: int = 5):
        super().__init__()
        if exponent < 1:
            raise ValueError(f"envelope exponent must be >= 1, got {exponent}")
        p = exponent
        self.p = p
        self.a = -(p + 1) * (p + 2) / 2.0
        self.b = float(p * (p + 2))
        self.c = -p * (p + 1) / 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = 1.0 + x.pow(self.p) * (self.a + x * (self.b + self.c * x))
        return torch.where(x < 1.0, env, torch.zeros_like(x))


class RadialBesselBasis(nn.Module):
    """e_n(d) = u(d/c) sqrt(2/c) sin(f_n d / c) / d with learnable f_n (init n*pi), n = 1..N.

    DimeNet eq. 7 / GemNet "radial basis"; input d [n_edges], output [n_edges, num_radial].
    """

    def __init__(self, num_radial: int, cutoff: float, envelope_exponent: int = 5):
        super().__init__()
        self.inv_cutoff = 1.0 / cutoff
        self.norm_const = math.sqrt(2.0 * self.inv_cutoff)
        self.envelope = PolynomialEnvelope(envelope_exponent)
        self.frequencies = nn.Parameter(math.pi * torch.arange(1, num_radial + 1, dtype=torch.get_default_dtype()))

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        d = d[:, None]  # [n_edges, 1]
        x = d * self.inv_cutoff  # [n_edges, 1]
        return self.envelope(x) * self.norm_const * torch.sin(self.frequencies * x) / d  # [n_edges, num_radial]


def spherical_bessel(x: torch.Tensor, num_orders: int) -> list[torch.Tensor]:
    """Spherical Bessel functions j_0..j_{L-1} of the first kind by upward recurrence.

    j_0 = sin x / x, j_1 = sin x / x^2 - cos x / x, j_{l+1} = (2l+1)/x j_l - j_{l-1}.
    Returns a list of L tensors shaped like x (x > 0).
    """
    inv_x = 1.0 / x
    j0 = torch.sin(x) * inv_x
    out = [j0]
    if num_orders > 1:
        out.append((j0 - torch.cos(x)) * inv_x)
    for order in range(1, num_orders - 1):
        out.append((2 * order + 1) * inv_x * out[order] - out[order - 1])
    return out


def spherical_bessel_zeros(num_orders: int, num_zeros: int) -> torch.Tensor:
    """First `num_zeros` positive roots z_ln of j_l for l < num_orders, float64 [L, N].

    Roots of j_l interlace those of j_{l-1}, so each root is bracketed by two consecutive
    roots of the previous order and found by bisection (init-time only).
    """
    n_total = num_zeros + num_orders - 1
    roots = math.pi * torch.arange(1, n_total + 1, dtype=torch.float64)  # zeros of j_0
    out = [roots[:num_zeros]]
    for order in range(1, num_orders):
        lo, hi = roots[:-1].clone(), roots[1:].clone()
        f_lo = spherical_bessel(lo, order + 1)[order]
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            f_mid = spherical_bessel(mid, order + 1)[order]
            same = torch.sign(f_mid) == torch.sign(f_lo)
            lo = torch.where(same, mid, lo)
            f_lo = torch.where(same, f_mid, f_lo)
            hi = torch.where(same, hi, mid)
        roots = 0.5 * (lo + hi)
        out.append(roots[:num_zeros])
    return torch.stack(out)


class SphericalBasis(nn.Module):
    """2D spherical Fourier-Bessel basis a_{ln}(d, theta) (DimeNet eq. 9, GemNet cbf).

    a_{ln}(d, theta) = u(d/c) * sqrt(2/c^3) / |j_{l+1}(z_ln)| * j_l(z_ln d / c) * Y_l0(theta),
    with Y_l0(theta) = sqrt((2l+1)/(4 pi)) P_l(cos theta). The radial and angular factors are
    returned separately (GemNet's efficient reformulation, Appendix), since the radial part
    lives on edges and the angular part on triplets.
    """

    def __init__(self, num_spherical: int, num_radial: int, cutoff: float, envelope_exponent: int = 5):
        super().__init__()
        self.num_spherical = num_spherical
        self.inv_cutoff = 1.0 / cutoff
        self.envelope = PolynomialEnvelope(envelope_exponent)
        zeros = spherical_bessel_zeros(num_spherical, num_radial)  # [S, R] float64
        j_next = torch.stack([spherical_bessel(zeros[ell], ell + 2)[ell + 1] for ell in range(num_spherical)])  # [S, R]
        norm = math.sqrt(2.0) * self.inv_cutoff**1.5 / j_next.abs()  # [S, R]
        sph_norm = torch.sqrt((2 * torch.arange(num_spherical, dtype=torch.float64) + 1) / (4 * math.pi))  # [S]
        dtype = torch.get_default_dtype()
        self.register_buffer("zeros", zeros.to(dtype))
        self.register_buffer("radial_norm", norm.to(dtype))
        self.register_buffer("sph_norm", sph_norm.to(dtype))
        self.register_buffer("order_index", torch.arange(num_spherical), persistent=False)

    def radial(self, d: torch.Tensor) -> torch.Tensor:
        """Radial factor u(d/c) N_ln j_l(z_ln d/c): d [n_edges] -> [n_edges, S, R]."""
        x = d * self.inv_cutoff  # [n_edges]
        # The upward recurrence loses ~|y_l/j_l| * eps for arguments below l, too much in
        # float32 for l = 6 (1e-4 at d = 0.6 A), so it is evaluated in float64.
        arg = self.zeros.double() * x.double()[:, None, None]  # [n_edges, S, R]
        # j_l is needed at the l-th row of `arg` only: evaluate all orders, keep the diagonal.
        j_all = torch.stack(spherical_bessel(arg, self.num_spherical), dim=1)  # [n_edges, L, S, R]
        j = j_all[:, self.order_index, self.order_index].to(d.dtype)  # [n_edges, S, R]
        return self.envelope(x)[:, None, None] * self.radial_norm * j

    def angular(self, cos_angle: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Y_l0 via the Legendre recurrence; cos_angle [...] -> stacked along `dim` with S entries."""
        p = [torch.ones_like(cos_angle), cos_angle]
        for ell in range(2, self.num_spherical):
            p.append(((2 * ell - 1) * cos_angle * p[ell - 1] - (ell - 1) * p[ell - 2]) / ell)
        y = torch.stack(p[: self.num_spherical], dim=dim)
        shape = [1] * y.dim()
        shape[dim] = self.num_spherical
        return y * self.sph_norm.view(shape)
