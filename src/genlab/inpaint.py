"""Inpainting from files, for any family with an `inpaint(x, fill, ...)` capability.

The image is read as it is stored (8-bit, grayscale or RGB); the mask is a PNG of the same size
(white = fill, black = keep) or a named region. When the image's size differs from the model's,
the model works on a resized copy and its result is resized back; either way the output has
the input's size and every pixel outside the mask is the input's own byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genlab.data.image import read_image
from genlab.errors import DataError, UsageError
from genlab.models.base import Inpaints

NAMED_MASKS = ("left-half", "right-half", "top-half", "bottom-half", "center")
"""Regions `--mask` accepts by name (the region to fill); `center` is the middle half of each
side."""


def named_mask(name: str, height: int, width: int) -> np.ndarray:
    """The named fill region as a bool array (height, width)."""
    m = np.zeros((height, width), dtype=bool)
    if name == "left-half":
        m[:, : width // 2] = True
    elif name == "right-half":
        m[:, width // 2 :] = True
    elif name == "top-half":
        m[: height // 2] = True
    elif name == "bottom-half":
        m[height // 2 :] = True
    elif name == "center":
        m[height // 4 : height - height // 4, width // 4 : width - width // 4] = True
    else:
        raise UsageError(
            f"unknown mask '{name}': give a PNG file (white = fill) or one of "
            f"{', '.join(NAMED_MASKS)}"
        )
    return m


def read_mask(spec: str, height: int, width: int) -> np.ndarray:
    """The fill region (height, width) from a named mask or an image file (pixels > 127)."""
    path = Path(spec)
    if spec in NAMED_MASKS or not path.suffix:
        return named_mask(spec, height, width)
    if not path.is_file():
        raise UsageError(f"mask file not found: {spec}")
    pixels, _ = read_image(path, spec)
    if pixels.shape[:2] != (height, width):
        raise DataError(
            f"mask {spec} is {pixels.shape[1]}x{pixels.shape[0]} but the image is "
            f"{width}x{height} (width x height); give a mask of the image's size"
        )
    fill = pixels > 127
    return fill.any(axis=2) if fill.ndim == 3 else fill


def _resize(a: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """Resize a uint8 image (H, W) or (H, W, C) with Pillow."""
    return np.asarray(Image.fromarray(a).resize((width, height), resample))


def inpaint_file(
    model: Any,
    image: str | Path,
    mask: str,
    *,
    n: int = 1,
    generator: torch.Generator | None = None,
    **options: Any,
) -> np.ndarray:
    """n completions of the image file: uint8 (n, H, W) or (n, H, W, 3) at the image's size,
    equal to the image outside the mask. `options` go to `model.inpaint`."""
    if not isinstance(model, Inpaints):
        raise UsageError(f"'{model.family}' cannot inpaint; use a diffusion (ddpm) run")
    if not Path(image).is_file():
        raise UsageError(f"image not found: {image}")
    pixels, gray = read_image(Path(image), str(image))  # (H, W) or (H, W, 3) uint8
    c, h, w = model.info.shape
    if (c == 1) != gray:
        kind = "grayscale" if gray else "colour"
        raise DataError(
            f"{image} is a {kind} image but the model makes {c}-channel images; convert it to "
            f"{'grayscale' if c == 1 else 'RGB'} first"
        )
    height, width = pixels.shape[:2]
    fill = read_mask(mask, height, width)
    if not fill.any():
        raise DataError(f"the mask {mask} selects no pixel to fill")
    small, small_fill = pixels, fill
    resized = (height, width) != (h, w)
    if resized:  # work at the model's size; a pixel is filled if any part of it is
        small = _resize(pixels, h, w, Image.BILINEAR)
        small_fill = _resize(fill.astype(np.uint8) * 255, h, w, Image.BOX) > 0
    x = torch.from_numpy(small.reshape(h, w, -1).transpose(2, 0, 1).copy()).float() / 255
    x = x.unsqueeze(0).expand(n, c, h, w).to(model.device)
    f = torch.from_numpy(small_fill)[None, None].to(model.device)  # (1, 1, h, w)
    out = model.inpaint(x, f, generator=generator, **options)  # (n, c, h, w) in [0, 1]
    gen = (out.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().transpose(0, 2, 3, 1)
    if c == 1:
        gen = gen[..., 0]
    if resized:
        gen = np.stack([_resize(g, height, width, Image.BICUBIC) for g in gen])
    keep = ~fill if pixels.ndim == 2 else ~fill[..., None]
    return np.where(keep, pixels[None], gen)  # the input's bytes outside the mask


def save_inpainted(images: np.ndarray, out: Path) -> list[Path]:
    """Write completions as PNGs: `out` for one, `out-K.png` for several; or one .npy array
    (n, C, H, W) in [0, 1]."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        arr = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        np.save(out, arr.astype(np.float32) / 255)
        return [out]
    if out.suffix != ".png":
        raise UsageError(f"--out must end in .png or .npy; got {out.name}")
    paths = (
        [out]
        if len(images) == 1
        else [out.with_name(f"{out.stem}-{k}.png") for k in range(len(images))]
    )
    for img, path in zip(images, paths, strict=True):
        Image.fromarray(img).save(path)
    return paths
