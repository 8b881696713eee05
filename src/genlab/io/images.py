"""PNG grids of image batches."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.io.atomic import write_bytes_atomic


def to_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile images (N, C, H, W) in [0, 1] into one uint8 array (rows*H, cols*W[, 3])."""
    x = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = x.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.ones((c, rows * (h + pad) + pad, cols * (w + pad) + pad))
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    arr = (grid * 255).round().to(torch.uint8).numpy()
    return arr[0] if c == 1 else arr.transpose(1, 2, 0)


def save_grid(
    images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 0
) -> Path:
    """Save images (N, C, H, W) in [0, 1] as a PNG grid, atomically; small images are enlarged
    for viewing."""
    path = Path(path)
    img = Image.fromarray(to_grid(images, nrow))
    scale = scale or max(1, 4 if images.shape[-1] <= 16 else 2 if images.shape[-1] <= 32 else 1)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    write_bytes_atomic(path, buffer.getvalue())
    return path


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Save one image (C, H, W) in [0, 1] as a PNG of its own size (no border, no enlarging),
    atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    Image.fromarray(to_grid(image[None], nrow=1, pad=0)).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())
    return path


def load_image(path: str | Path, shape: list[int] | tuple[int, ...]) -> torch.Tensor:
    """An image file as a tensor (C, H, W) in [0, 1] that must have `shape` (C, H, W): a file of
    another size or colour mode is a DataError that says so."""
    from genlab.data.image import read_image
    from genlab.errors import DataError, UsageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"image not found: {path}")
    pixels, gray = read_image(path, str(path))  # (H, W) or (H, W, 3) uint8
    c, h, w = shape
    if pixels.shape[:2] != (h, w):
        raise DataError(
            f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels but the model's images are "
            f"{w}x{h} (width x height); resize or crop it first"
        )
    if (c == 1) != gray:
        kind = "grayscale" if gray else "colour"
        raise DataError(
            f"{path} is a {kind} image but the model's images have {c} channel(s); convert it "
            f"to {'grayscale' if c == 1 else 'RGB'} first"
        )
    x = torch.from_numpy(pixels.reshape(h, w, -1).transpose(2, 0, 1).copy())
    return x.float() / 255
