"""The "textbook" convention: each metric as its original paper defines it, in one consistent form.

Kept beside the two evaluators' conventions (``cddfuse``, ``vifb``) because their quirks (MI in
nats with per-image stretching, SSIM with a data range of 2 on 0..255 values, PSNR with the fused
image's own peak, Qabf with orientation not taken modulo pi) make numbers that only compare with
tables made the same way. Here, instead:

* every metric works on gray images as float64 in [0, 255]; a colour fused frame is first reduced
  to its luma (ITU-R 601, as OpenCV's BGR2GRAY);
* information in **bits** (log base 2); entropy and MI from 256-bin histograms of the uint8 values;
* metrics that compare the fused image F with the sources A (infrared) and B (visible) are the
  **sum** over both sources (MI, SCD, VIF, SSIM), except PSNR which uses their mean squared error
  with the peak 255;
* Qabf takes orientation modulo pi and replicates borders; SSIM is Wang et al. 2004 (11x11 Gaussian).

Numbers from here do not match published tables; use ``cddfuse`` or ``vifb`` for that.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from occo_deploy.evaluation.windows import filter_valid


def gray(image: np.ndarray) -> np.ndarray:
    """float64 gray in [0, 255]: luma of a BGR image, the image itself when it is already gray."""
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3:
        image = image[:, :, 0]
    return image.astype(np.float64)


def _hist(img: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.clip(img, 0, 255).astype(np.int64).ravel(), minlength=256)
    return counts / counts.sum()


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def entropy(f: np.ndarray) -> float:
    """EN = -sum_i p_i log2 p_i over the 256-bin histogram of F (bits). 0 for a constant image."""
    return _entropy(_hist(f))


def std_dev(f: np.ndarray) -> float:
    """SD = sqrt(mean((F - mean(F))^2)), the population standard deviation."""
    return float(np.std(f))


def spatial_frequency(f: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2): RF^2 = mean of (F[i,j] - F[i,j-1])^2, CF^2 = mean of (F[i,j] - F[i-1,j])^2."""
    rf2 = np.mean(np.diff(f, axis=1) ** 2)
    cf2 = np.mean(np.diff(f, axis=0) ** 2)
    return float(math.sqrt(rf2 + cf2))


def average_gradient(f: np.ndarray) -> float:
    """AG = mean over pixels of sqrt((Gx^2 + Gy^2) / 2), G from ``np.gradient`` (central differences
    inside, one-sided at the border), as the CDDFuse/VIFB evaluator."""
    gx, gy = np.gradient(f)
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2.0)))


def mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """MI(X, Y) = H(X) + H(Y) - H(X, Y) in bits, from the 256 x 256 joint histogram. MI(A, A) = EN(A)."""
    xi = np.clip(x, 0, 255).astype(np.int64).ravel()
    yi = np.clip(y, 0, 255).astype(np.int64).ravel()
    joint = np.bincount(xi * 256 + yi, minlength=256 * 256).astype(np.float64)
    joint /= joint.sum()
    return _entropy(_hist(x)) + _entropy(_hist(y)) - _entropy(joint)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SCD = corr(F - B, A) + corr(F - A, B), Pearson correlations (Aslantas & Bendes 2015)."""
    return _corr(f - b, a) + _corr(f - a, b)


def _gaussian(size: int, sigma: float) -> np.ndarray:
    k = cv2.getGaussianKernel(size, sigma)
    return k @ k.T


def vif_pixel(ref: np.ndarray, dist: np.ndarray, sigma_n_sq: float = 2.0, eps: float = 1e-10) -> float:
    """Pixel-domain multi-scale VIF of ``dist`` against ``ref`` (Sheikh & Bovik 2006, "vifp").

    Four scales; at scale s a Gaussian window of N = 2^(5-s)+1 pixels, sigma N/5 (scales after the
    first are low-passed and decimated by 2). Per window: g = s_rd / s_r^2, s_v^2 = s_d^2 - g s_rd,
    VIF = sum log10(1 + g^2 s_r^2 / (s_v^2 + sn^2)) / sum log10(1 + s_r^2 / sn^2), sn^2 = 2.
    VIF(A, A) = 1.
    """
    num = den = 0.0
    ref = ref.astype(np.float64)
    dist = dist.astype(np.float64)
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _gaussian(n, n / 5.0)
        if scale > 1:
            ref = filter_valid(ref, win)[::2, ::2]
            dist = filter_valid(dist, win)[::2, ::2]
        if min(ref.shape) < n:
            break  # too small for this scale's window
        mu1, mu2 = filter_valid(ref, win), filter_valid(dist, win)
        s1 = filter_valid(ref * ref, win) - mu1 * mu1
        s2 = filter_valid(dist * dist, win) - mu2 * mu2
        s12 = filter_valid(ref * dist, win) - mu1 * mu2
        s1 = np.maximum(s1, 0)
        s2 = np.maximum(s2, 0)
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        flat_ref = s1 < eps
        g[flat_ref] = 0
        sv[flat_ref] = s2[flat_ref]
        s1[flat_ref] = 0
        flat_dist = s2 < eps
        g[flat_dist] = 0
        sv[flat_dist] = 0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0
        sv = np.maximum(sv, eps)
        num += float(np.sum(np.log10(1.0 + g * g * s1 / (sv + sigma_n_sq))))
        den += float(np.sum(np.log10(1.0 + s1 / sigma_n_sq)))
    return num / den if den > 0 else 1.0


_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient strength and orientation (atan(gy/gx), in [-pi/2, pi/2]); borders replicated."""
    gx = cv2.filter2D(img, cv2.CV_64F, _SOBEL_X, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(img, cv2.CV_64F, _SOBEL_X.T, borderType=cv2.BORDER_REPLICATE)
    strength = np.sqrt(gx * gx + gy * gy)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.arctan(gy / gx)
    angle[(gx == 0) & (gy == 0)] = 0.0
    return strength, np.nan_to_num(angle)  # gx = 0, gy != 0: +-pi/2 already


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qabf, edge information transferred from A and B to F (Xydeas & Petrovic 2000).

    Sobel strength g and orientation alpha; G^{XF} = min(g_X, g_F) / max(g_X, g_F); orientation
    agreement A^{XF} = | |alpha_X - alpha_F| - pi/2 | / (pi/2) (orientation is modulo pi);
    Q^{XF} = Tg / (1 + e^{kg (G - Dg)}) * Ta / (1 + e^{ka (A - Da)}) with Tg = 0.9994, kg = -15,
    Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8; Qabf = sum(Q^{AF} g_A + Q^{BF} g_B) / sum(g_A + g_B)
    (weights g^L, L = 1). With these constants a perfect transfer scores about 0.975, not 1.
    """
    ga, aa = _sobel(a)
    gb, ab = _sobel(b)
    gf, af = _sobel(f)

    def transfer(gx: np.ndarray, ax: np.ndarray) -> np.ndarray:
        hi = np.maximum(gx, gf)
        strength = np.where(hi > 0, np.minimum(gx, gf) / np.where(hi > 0, hi, 1.0), 0.0)
        orient = np.abs(np.abs(ax - af) - np.pi / 2) / (np.pi / 2)
        qg = 0.9994 / (1 + np.exp(-15 * (strength - 0.5)))
        qa = 0.9879 / (1 + np.exp(-22 * (orient - 0.8)))
        return qg * qa

    weight = ga + gb
    total = float(weight.sum())
    if total == 0:
        return 0.0
    return float((transfer(ga, aa) * ga + transfer(gb, ab) * gb).sum() / total)


def ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255,
    over the windows fully inside the image. SSIM(A, A) = 1."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    side = min(x.shape[:2])
    win = _gaussian(min(11, side if side % 2 else side - 1), 1.5)  # smaller images: largest odd window
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    mx, my = filter_valid(x, win), filter_valid(y, win)
    sxx = filter_valid(x * x, win) - mx * mx
    syy = filter_valid(y * y, win) - my * my
    sxy = filter_valid(x * y, win) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(value.mean())


def psnr_fusion(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """PSNR = 10 log10(255^2 / ((MSE(A, F) + MSE(B, F)) / 2)) in dB."""
    mse = (np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2.0
    return math.inf if mse == 0 else float(10 * math.log10(255.0**2 / mse))


def metrics(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> dict[str, float | None]:
    """All ten metrics for one pair (sources and fused image in any of gray, BGR)."""
    a, b, f = gray(ir), gray(vis), gray(fused)
    return {
        "EN": entropy(f),
        "SD": std_dev(f),
        "SF": spatial_frequency(f),
        "AG": average_gradient(f),
        "MI": mutual_information(a, f) + mutual_information(b, f),
        "SCD": scd(a, b, f),
        "VIF": vif_pixel(a, f) + vif_pixel(b, f),
        "Qabf": qabf(a, b, f),
        "SSIM": ssim(a, f) + ssim(b, f),
        "PSNR": psnr_fusion(a, b, f),
    }
