"""The "vifb" convention: the VIFB toolbox's ``metrics/*.m`` (MATLAB), value for value.

VIFB (Zhang et al., CVPR-W 2020, github.com/xingchenzhang/VIFB at commit 22b2ea9) is the benchmark
many infrared-visible fusion tables come from. Written here from its MATLAB formulas with numpy and
OpenCV; every docstring cites the file and line it reproduces (line numbers of the .m files at that
commit). ``compute_metrics.m:87-110`` calls ``metricsX(imgVI, imgIR, fused)`` on the images as
``imread`` gives them (uint8, RGB or gray). What follows from the .m files:

* **A colour fused image is scored band by band** (R, G, B against the visible image's same band
  and the infrared image) and the bands' values averaged, for EN, SD, AG, MI, SSIM, PSNR and Qabf
  (the ``b == 1 / b1 == 1 / else`` block at the top of each file). SF is the exception: it walks
  the m x 3n matrix MATLAB sees when a colour image is indexed with two subscripts (R, G and B side
  by side).
* **A gray fused image** is scored once; a colour visible image is then turned gray by MATLAB's
  ``rgb2gray`` (0.298936 R + 0.587043 G + 0.114021 B), rounded when the metric passes it uint8
  (MI, SSIM) and not when it first made it double (PSNR, Qabf).
* VIFB has no SCD and no VIF: this convention returns ``None`` for them (``null`` in reports, "-"
  in tables), rather than mixing in another evaluator's numbers.
* A gray visible image with a colour fused one makes VIFB's band loop fail; here its one band
  stands for all three.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from occo_deploy.evaluation.windows import filter_valid, fspecial_gaussian

#: MATLAB's rgb2gray weights (the first row of inv of the NTSC YIQ matrix), for R, G, B.
MATLAB_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
#: GNU Octave's (7.x) rgb2gray weights: MATLAB's to six digits. Only for comparing with VIFB run in Octave.
OCTAVE_RGB2GRAY = (0.298936, 0.587043, 0.114021)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's round (and integer conversion): halves away from zero, not to even as numpy."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def rgb2gray(bgr: np.ndarray, rounded: bool,
             weights: tuple[float, float, float] = MATLAB_RGB2GRAY) -> np.ndarray:
    """MATLAB ``rgb2gray`` of the image in BGR order; ``rounded`` as for a uint8 input."""
    b, g, r = (bgr[:, :, k].astype(np.float64) for k in range(3))
    out = weights[0] * r + weights[1] * g + weights[2] * b
    return _round_half_away(out) if rounded else out


def _bands(image: np.ndarray) -> list[np.ndarray]:
    """R, G, B bands (MATLAB's order) of a BGR image as float64."""
    return [image[:, :, k].astype(np.float64) for k in (2, 1, 0)]


def entropy(f: np.ndarray) -> float:
    """metricsEntropy.m:30-57: 256-bin histogram of floor(F), -sum p log2 p (bits)."""
    counts = np.bincount(np.floor(f).astype(np.int64).ravel(), minlength=256)
    p = counts[counts > 0] / f.size
    return float(-np.sum(p * np.log2(p)))


def std_dev(f: np.ndarray) -> float:
    """metricsVariance.m:30-41 (named "Variance", returns the SD): sqrt(sum((F - mean)^2) / (r c))."""
    return float(np.sqrt(np.sum((f - f.mean()) ** 2) / f.size))


def spatial_frequency(f: np.ndarray) -> float:
    """metricsSpatial_frequency.m:8-31: RF = sum of squared horizontal differences / (m n), CF
    likewise vertically, SF = sqrt(RF + CF). Both divide by m n, not by the number of differences."""
    m, n = f.shape
    rf = np.sum(np.diff(f, axis=1) ** 2) / (m * n)
    cf = np.sum(np.diff(f, axis=0) ** 2) / (m * n)
    return float(math.sqrt(rf + cf))


def average_gradient(f: np.ndarray) -> float:
    """metricsAvg_gradient.m:8-25: MATLAB ``gradient`` (central inside, one-sided at the border),
    sum of sqrt((Gx^2 + Gy^2) / 2) divided by (r - 1)(c - 1), not by r c."""
    gy, gx = np.gradient(f)
    r, c = f.shape
    return float(np.sum(np.sqrt((gx**2 + gy**2) / 2)) / ((r - 1) * (c - 1)))


def _mutinf(a: np.ndarray, b: np.ndarray) -> float:
    """metricsMutinf.m:43-115 (``mutinf``): each image stretched to 0..1 by its own min and max (a
    constant one becomes 0), binned as int16(x * 255) + 1 (MATLAB rounding), natural log: **nats**."""

    def bins(x: np.ndarray) -> np.ndarray:
        lo, hi = float(x.min()), float(x.max())
        if hi == lo:
            return np.zeros(x.size, np.int64)
        return _round_half_away((x - lo) / (hi - lo) * 255).astype(np.int64).ravel()

    ia, ib = bins(a), bins(b)
    joint = np.bincount(ia * 256 + ib, minlength=256 * 256).astype(np.float64) / ia.size

    def h(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-np.sum(p * np.log(p)))

    return h(np.bincount(ia, minlength=256) / ia.size) + h(np.bincount(ib, minlength=256) / ib.size) - h(joint)


def _ssim(x: np.ndarray, f: np.ndarray) -> float:
    """metricsSsim.m:40-98 (``ssim``): Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5),
    K1 0.01, K2 0.03, L 255, 'valid' windows, mean of the map. SSIM(A, A) = 1."""
    w = fspecial_gaussian(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ua, ub = filter_valid(x, w), filter_valid(f, w)
    saa = filter_valid(x * x, w) - ua * ua
    sbb = filter_valid(f * f, w) - ub * ub
    sab = filter_valid(x * f, w) - ua * ub
    ssim_map = ((2 * ua * ub + c1) * (2 * sab + c2)) / ((ua * ua + ub * ub + c1) * (saa + sbb + c2))
    return float(ssim_map.mean()) if ssim_map.size else math.nan  # smaller than the window: MATLAB's NaN


def _mse(x: np.ndarray, f: np.ndarray) -> float:
    """metricsPsnr.m:43-54 (``mse``): sqrt(sum((A - F)^2)) / (m n), the root of the SSE over the
    pixel count: not the mean squared error its name says."""
    return float(np.sqrt(np.sum((x - f) ** 2)) / x.size)


def _psnr(vis: np.ndarray, ir: np.ndarray, f: np.ndarray) -> float:
    """metricsPsnr.m:33-39: 20 log10(255 / sqrt((mse(VI, F) + mse(IR, F)) / 2)), with the ``mse``
    above; identical images give infinity."""
    mes = (_mse(vis, f) + _mse(ir, f)) / 2
    return math.inf if mes == 0 else float(20 * math.log10(255 / math.sqrt(mes)))


# Sobel kernels of metricsQabf.m:38 (h1 vertical, h3 horizontal).
_H1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)
_H3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


def _conv2_same(p: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``conv2(p, h, 'same')`` for a 3x3 ``h``, zero-filled border, accumulated term by term in the
    order GNU Octave's conv2 adds them (kernel columns last to first, rows first to last), which
    reproduces its result bit for bit. The order matters here: on a gray fusion scored against a
    colour visible image the visible luma is not rounded, Sobel responses that are 0 in exact
    arithmetic come out as +-1e-12, and atan(Sy / Sx) turns that noise's sign into +-pi/2."""
    m, n = p.shape
    full = np.zeros((m + 2, n + 2))
    for j in (2, 1, 0):
        for i in (0, 1, 2):
            full[i : i + m, j : j + n] += p * h[i, j]
    return full[1 : m + 1, 1 : n + 1]


def _sobel(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """metricsQabf.m:56-85: ``conv2(p, h, 'same')`` (zero-filled border), strength and
    atan(Sy / Sx), pi/2 where Sx = 0."""
    sx, sy = _conv2_same(p, _H3), _conv2_same(p, _H1)
    angle = np.full(p.shape, math.pi / 2)
    nz = sx != 0
    angle[nz] = np.arctan(sy[nz] / sx[nz])
    return np.sqrt(sx * sx + sy * sy), angle


def _q_transfer(gx: np.ndarray, ax: np.ndarray, gf: np.ndarray, af: np.ndarray) -> np.ndarray:
    """metricsQabf.m:95-113: G = min/max of the strengths, except G = g_F where they are equal (a
    strength, not 1); A = 1 - |alpha_X - alpha_F| / (pi/2), no modulo pi;
    Q = 0.9994 / (1 + e^(-15 (G - 0.5))) * 0.9879 / (1 + e^(-22 (A - 0.8)))."""
    g = gf.copy()  # where equal
    hi, lo = gx > gf, gx < gf
    g[hi] = gf[hi] / gx[hi]
    g[lo] = gx[lo] / gf[lo]
    agree = 1 - np.abs(ax - af) / (math.pi / 2)
    with np.errstate(over="ignore"):  # exp overflows to inf for a large G: Q -> 0.9994, as in MATLAB
        return 0.9994 / (1 + np.exp(-15 * (g - 0.5))) * 0.9879 / (1 + np.exp(-22 * (agree - 0.8)))


def _qabf(vis: np.ndarray, ir: np.ndarray, f: np.ndarray) -> float:
    """metricsQabf.m:32-139: every image first scaled by 255 (``255 * im2double`` of a double is
    255 x; only the "equal strengths" case above sees the scale), then
    sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B)."""
    ga, aa = _sobel(255 * vis)
    gb, ab = _sobel(255 * ir)
    gf, af = _sobel(255 * f)
    with np.errstate(invalid="ignore", divide="ignore"):  # no edge anywhere: 0 / 0, MATLAB's NaN
        return float(np.sum(_q_transfer(ga, aa, gf, af) * ga + _q_transfer(gb, ab, gf, af) * gb) / np.sum(ga + gb))


def metrics(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray,
            weights: tuple[float, float, float] = MATLAB_RGB2GRAY) -> dict[str, float | None]:
    """The VIFB metrics for one pair (uint8; infrared gray, visible and fused gray or BGR).
    ``weights``: rgb2gray's, MATLAB's unless comparing with VIFB run in Octave."""
    ir_g = ir if ir.ndim == 2 else rgb2gray(ir, True, weights)  # a 3-band IR image is gray repeated
    ir_g = ir_g.astype(np.float64)
    if fused.ndim == 3 and fused.shape[2] >= 3:
        fb = _bands(fused)
        vb = _bands(vis) if vis.ndim == 3 else [vis.astype(np.float64)] * 3

        def per_band(fn: Callable[[np.ndarray, np.ndarray], float]) -> float:
            return float(np.mean([fn(v, f) for v, f in zip(vb, fb)]))

        rgb_side_by_side = np.concatenate(fb, axis=1)
        return {
            "EN": per_band(lambda v, f: entropy(f)),
            "SD": per_band(lambda v, f: std_dev(f)),
            "SF": spatial_frequency(rgb_side_by_side),
            "AG": per_band(lambda v, f: average_gradient(f)),
            "MI": per_band(lambda v, f: _mutinf(v, f) + _mutinf(ir_g, f)),
            "SCD": None,
            "VIF": None,
            "Qabf": per_band(lambda v, f: _qabf(v, ir_g, f)),
            "SSIM": per_band(lambda v, f: _ssim(v, f) + _ssim(ir_g, f)),
            "PSNR": per_band(lambda v, f: _psnr(v, ir_g, f)),
        }
    f = (fused if fused.ndim == 2 else fused[:, :, 0]).astype(np.float64)
    colour = vis.ndim == 3 and vis.shape[2] >= 3
    vis_u8 = rgb2gray(vis, True, weights) if colour else vis.astype(np.float64)  # MI, SSIM: rgb2gray(uint8)
    vis_d = rgb2gray(vis, False, weights) if colour else vis.astype(np.float64)  # PSNR, Qabf: of double
    return {
        "EN": entropy(f),
        "SD": std_dev(f),
        "SF": spatial_frequency(f),
        "AG": average_gradient(f),
        "MI": _mutinf(vis_u8, f) + _mutinf(ir_g, f),
        "SCD": None,
        "VIF": None,
        "Qabf": _qabf(vis_d, ir_g, f),
        "SSIM": _ssim(vis_u8, f) + _ssim(ir_g, f),
        "PSNR": _psnr(vis_d, ir_g, f),
    }
