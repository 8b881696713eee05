"""Reader for folders of PNG/JPEG images, unlabelled or in one sub-folder per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.data.core import Dataset, image_dataset
from genlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "F")  # plus every "I;16*" variant


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith(".") and is_image(p))


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_images(directory: Path) -> bool:
    """True when the folder holds images directly or in a sub-folder (the image-folder layout)."""
    if _images_in(directory):
        return True
    return any(_images_in(sub) for sub in _class_dirs(directory))


def scan_image_folder(
    directory: Path, source: str
) -> tuple[list[Path], list[int] | None, list[str]]:
    """List image files with their class indices (None when unlabelled) and the class names."""
    top = _images_in(directory)
    subdirs = [d for d in _class_dirs(directory) if _images_in(d)]
    if top and subdirs:
        raise DataError(
            f"{source} mixes images at the top level ({top[0].name}, ...) with class "
            f"sub-folders ({subdirs[0].name}/, ...); put every image in a class sub-folder, or "
            "all of them at the top level for unlabelled data"
        )
    if top:
        return top, None, []
    if not subdirs:
        raise DataError(
            f"{source} holds no images (.png, .jpg or .jpeg), neither directly nor in class "
            "sub-folders; add images or point to another folder"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, sub in enumerate(subdirs):
        files = _images_in(sub)
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, labels, [d.name for d in subdirs]


def _describe(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def read_image(path: Path, name: str) -> tuple[np.ndarray, bool]:
    """Read one image as uint8 (H, W) for grayscale or (H, W, 3) for colour, and gray or not."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode.startswith("I;16") or mode == "I":
                wide = np.asarray(img, dtype=np.int64)
                if mode == "I" and wide.max(initial=0) <= 255:
                    return wide.clip(0, 255).astype(np.uint8), True
                return (wide.clip(0, 65535) >> 8).astype(np.uint8), True
            if mode in _GRAY_MODES:
                return np.asarray(img.convert("L"), dtype=np.uint8), True
            return np.asarray(img.convert("RGB"), dtype=np.uint8), False
    except Exception as exc:  # Pillow raises many types for corrupt files
        raise DataError(
            f"cannot read image {name}: {exc or type(exc).__name__}; replace or remove the file"
        ) from exc


def load_image_folder(
    directory: Path,
    source: str,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    task: str = "auto",
) -> Dataset:
    """Load a folder of same-sized PNG/JPEG images into (N, C, H, W) uint8 with 256 levels."""
    paths, labels, class_names = scan_image_folder(directory, source)
    arrays: list[np.ndarray] = []
    all_gray = True
    first_size: tuple[int, int] | None = None
    first_name = ""
    for path in paths:
        name = _describe(path, directory)
        pixels, gray = read_image(path, name)
        size = (pixels.shape[1], pixels.shape[0])  # width x height, as image tools show it
        if first_size is None:
            first_size, first_name = size, name
        elif size != first_size:
            raise DataError(
                f"images differ in size: {first_name} is {first_size[0]}x{first_size[1]} but "
                f"{name} is {size[0]}x{size[1]} (width x height); resize all images to one size"
            )
        arrays.append(pixels)
        all_gray = all_gray and gray
    if all_gray:
        x = np.stack(arrays)[:, None]
    else:
        x = np.stack([a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays])
        x = x.transpose(0, 3, 1, 2)
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    return image_dataset(
        source,
        x=np.ascontiguousarray(x),
        y=y,
        levels=256,
        class_names=class_names,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        task=task,
    )
