"""The "cddfuse" convention: MMIF-CDDFuse's ``utils/Evaluator.py``, value for value.

The evaluator most recent infrared-visible fusion papers report with (MMIF-CDDFuse, CVPR 2023,
github.com/Zhaozixiang1228/MMIF-CDDFuse at commit fd8da1f, with the versions its requirements.txt
pins: numpy 1.21.5, scikit-image 0.19.2, scikit-learn 1.1.3, scipy 1.7.3, OpenCV 4.5.3). Written here
from its formulas with numpy and OpenCV (no scikit-image, scikit-learn or scipy at run time); every
docstring cites the line of Evaluator.py it reproduces. Checked against that evaluator run in its
own environment (benchmarks/README.md, "Metric conventions against the original evaluators").

Inputs as ``image_read_cv2(path, 'GRAY')`` (Evaluator.py:9-18) gives them: a colour image is turned
to grey in float32 by OpenCV and rounded; everything is then float32 in [0, 255].
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from occo_deploy.evaluation.windows import filter_valid, fspecial_gaussian


def read_gray(image: np.ndarray) -> np.ndarray:
    """Evaluator.py:10-14: ``np.round(cv2.cvtColor(img.astype(float32), BGR2GRAY))``, float32."""
    img = image.astype(np.float32)
    if img.ndim == 3 and img.shape[2] >= 3:
        img = np.round(cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY))
    elif img.ndim == 3:
        img = img[:, :, 0]
    return img


def entropy(f: np.ndarray) -> float:
    """EN, Evaluator.py:32-36: 256-bin histogram of ``uint8(round(F))``, -sum h log2 h (bits)."""
    values = np.clip(np.round(f), 0, 255).astype(np.uint8).ravel()
    h = np.bincount(values) / values.size
    return float(-np.sum(h * np.log2(h + (h == 0))))


def std_dev(f: np.ndarray) -> float:
    """SD, Evaluator.py:39-41: ``np.std`` (population) of the float32 image."""
    return float(np.std(f))


def spatial_frequency(f: np.ndarray) -> float:
    """SF, Evaluator.py:44-46: sqrt(mean of horizontal differences^2 + mean of vertical ones^2)."""
    return float(np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:, :] - f[:-1, :]) ** 2)))


def average_gradient(f: np.ndarray) -> float:
    """AG, Evaluator.py:49-60: central differences inside, one-sided at the border (as ``np.gradient``),
    mean of sqrt((Gx^2 + Gy^2) / 2)."""
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def _mi_nats(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's ``mutual_info_score`` of two label arrays: the values themselves are the
    labels (integers here, after the rounding on reading), natural log (nats)."""
    _, xi = np.unique(x.ravel(), return_inverse=True)
    _, yi = np.unique(y.ravel(), return_inverse=True)
    nx, ny = int(xi.max()) + 1, int(yi.max()) + 1
    joint = np.bincount(xi * ny + yi, minlength=nx * ny).astype(np.float64).reshape(nx, ny)
    joint /= joint.sum()
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    return float(np.sum(joint[nz] * (np.log(joint[nz]) - np.log(np.outer(px, py)[nz]))))


def mutual_information(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """MI, Evaluator.py:63-66: ``mutual_info_score(F, A) + mutual_info_score(F, B)``, in **nats**."""
    return _mi_nats(f, a) + _mi_nats(f, b)


def psnr(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """PSNR, Evaluator.py:83-85 with MSE of :69-71: 10 log10(max(F)^2 / ((MSE(A,F) + MSE(B,F)) / 2)):
    the peak is the fused image's own maximum, not 255."""
    mse = (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2
    return math.inf if mse == 0 else float(10 * np.log10(float(np.max(f)) ** 2 / mse))


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x = x - np.mean(x)
    y = y - np.mean(y)
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat image: NaN, shown as "-", no warning
        return float(np.sum(x * y) / np.sqrt(np.sum(x**2) * np.sum(y**2)))


def scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SCD, Evaluator.py:88-96: corr(A, F - B) + corr(B, F - A)."""
    return _corr(a, f - b) + _corr(b, f - a)


def _vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """Evaluator.py:104-164 (``compare_viff``): pixel-domain VIF, four scales, sigma_n^2 = 2; a NaN
    result (a flat reference) counts as 1."""
    sigma_nsq, eps = 2.0, 1e-10
    num = den = 0.0
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = fspecial_gaussian(n, n / 5.0)
        if scale > 1:
            ref = filter_valid(ref, win)[::2, ::2]
            dist = filter_valid(dist, win)[::2, ::2]
        mu1, mu2 = filter_valid(ref, win), filter_valid(dist, win)
        s1 = filter_valid(ref * ref, win) - mu1 * mu1
        s2 = filter_valid(dist * dist, win) - mu2 * mu2
        s12 = filter_valid(ref * dist, win) - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps] = 0
        sv[s1 < eps] = s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps] = 0
        sv[s2 < eps] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= eps] = eps
        num += float(np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq))))
        den += float(np.sum(np.log10(1 + s1 / sigma_nsq)))
    value = num / den if den else math.nan
    return 1.0 if math.isnan(value) else value


def vif(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIF, Evaluator.py:99-101 (``VIFF``): VIF(A -> F) + VIF(B -> F)."""
    return _vifp(a, f) + _vifp(b, f)


_H1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)
_H3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluator.py:181-193: ``convolve2d(img, h, 'same')`` (zero-filled borders), strength and
    ``arctan(Sy / Sx)`` with pi/2 where Sx = 0."""
    # convolve2d flips the kernel: correlation with the kernel rotated by 180 degrees.
    sx = cv2.filter2D(img.astype(np.float64), cv2.CV_64F, np.rot90(_H3, 2), borderType=cv2.BORDER_CONSTANT)
    sy = cv2.filter2D(img.astype(np.float64), cv2.CV_64F, np.rot90(_H1, 2), borderType=cv2.BORDER_CONSTANT)
    g = np.sqrt(sx * sx + sy * sy)
    a = np.full(img.shape, math.pi / 2)
    nz = sx != 0
    a[nz] = np.arctan(sy[nz] / sx[nz])
    return g, a


def qabf_transfer(ax: np.ndarray, gx: np.ndarray, af: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """Evaluator.py:196-212 (VIFB's metricsQabf.m:95-110 alike): G = min/max of the strengths, except
    G = g_F where g_X = g_F (not 1); orientation agreement 1 - |alpha_X - alpha_F| / (pi/2) (no modulo
    pi); Q = Tg/(1+e^(kg(G-Dg))) * Ta/(1+e^(ka(A-Da))), Tg .9994, kg -15, Dg .5, Ta .9879, ka -22, Da .8."""
    g = np.zeros_like(gx)
    hi = gx > gf
    g[hi] = gf[hi] / gx[hi]
    eq = gx == gf
    g[eq] = gf[eq]
    lo = gx < gf
    g[lo] = gx[lo] / gf[lo]
    agree = 1 - np.abs(ax - af) / (math.pi / 2)
    return 0.9994 / (1 + np.exp(-15 * (g - 0.5))) * 0.9879 / (1 + np.exp(-22 * (agree - 0.8)))


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qabf, Evaluator.py:167-178: sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B)."""
    ga, aa = _sobel(a)
    gb, ab = _sobel(b)
    gf, af = _sobel(f)
    return float(np.sum(qabf_transfer(aa, ga, af, gf) * ga + qabf_transfer(ab, gb, af, gf) * gb) / np.sum(ga + gb))


def _ssim_skimage(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image 0.19.2 ``structural_similarity(x, y)`` with its defaults on float images:
    7x7 uniform window, sample covariance (N / (N - 1)), K1 0.01, K2 0.03, and the data range it
    infers from a float dtype, -1..1, so L = 2 (not 255); windows by ``uniform_filter`` with mirror
    borders, the mean taken over the image less 3 pixels on each side."""
    win, data_range = 7, 2.0
    np_ = win * win
    cov_norm = np_ / (np_ - 1.0)
    x, y = x.astype(np.float64), y.astype(np.float64)

    def box(img: np.ndarray) -> np.ndarray:  # scipy.ndimage.uniform_filter(mode='reflect')
        return cv2.blur(img, (win, win), borderType=cv2.BORDER_REFLECT)

    ux, uy = box(x), box(y)
    vx = cov_norm * (box(x * x) - ux * ux)
    vy = cov_norm * (box(y * y) - uy * uy)
    vxy = cov_norm * (box(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SSIM, Evaluator.py:215-217: ``ssim(F, A) + ssim(F, B)`` with scikit-image's float defaults."""
    return _ssim_skimage(f, a) + _ssim_skimage(f, b)


def metrics(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> dict[str, float | None]:
    """The ten metrics as test_IVF.py:61-67 computes them (A = infrared, B = visible)."""
    a, b, f = read_gray(ir), read_gray(vis), read_gray(fused)
    return {"EN": entropy(f), "SD": std_dev(f), "SF": spatial_frequency(f), "AG": average_gradient(f),
            "MI": mutual_information(a, b, f), "SCD": scd(a, b, f), "VIF": vif(a, b, f), "Qabf": qabf(a, b, f),
            "SSIM": ssim(a, b, f), "PSNR": psnr(a, b, f)}
