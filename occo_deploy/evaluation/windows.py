"""Window helpers the evaluators share: MATLAB's Gaussian and 'valid' filtering, on numpy + OpenCV."""

from __future__ import annotations

import cv2
import numpy as np


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: values below eps * max set to 0, sum 1 (CDDFuse's
    Evaluator.py:115-122 builds the same)."""
    m = (size - 1) / 2
    y, x = np.ogrid[-m : m + 1, -m : m + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    return h / h.sum()


def filter_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with ``kernel``, keeping only windows fully inside the image: MATLAB's
    ``filter2(kernel, img, 'valid')``, and scipy's ``convolve2d(img, rot90(kernel, 2), 'valid')``."""
    out = cv2.filter2D(img.astype(np.float64), cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
    r, c = kernel.shape[0] // 2, kernel.shape[1] // 2
    return out[r : out.shape[0] - (kernel.shape[0] - 1 - r), c : out.shape[1] - (kernel.shape[1] - 1 - c)]
