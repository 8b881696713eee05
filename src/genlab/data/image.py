"""The image kind: folders of IDX files (MNIST format) or of PNG/JPEG images.

Stored form: uint8 (N, C, H, W) with `levels` grey levels per channel (256 for files; the
built-in digits have 17). Model form: float32 in [0, 1] (stored value / (levels - 1)). Writer:
a PNG grid of the samples, or their float values as .npy.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.data.builtin import BUILTINS, builtin_images
from genlab.data.core import (
    SPLITS,
    DataInfo,
    Dataset,
    Split,
    carve_val,
    fingerprint,
    split_indices,
)
from genlab.data.idx import IDX_NAME, find_idx_files, read_idx_dir, read_idx_pair
from genlab.data.kind import DataKind, Inputs, NoSettings, SplitSettings
from genlab.errors import DataError, UsageError
from genlab.io.atomic import write_bytes_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "F")  # plus every "I;16*" variant


@dataclass
class ImageRecord:
    """The image kind's part of DataInfo."""

    levels: int = 256
    """Grey levels per channel of the stored uint8 values (0 .. levels - 1)."""
    grey_fraction: float | None = None
    """Share of the training split's pixel values strictly between 5% and 95% of the range
    (`grey_fraction`): about 0 for binary images; None when unknown (runs before it existed)."""


class ImageDataset(Dataset):
    """Images stored as uint8; batches hold float32 (B, C, H, W) in [0, 1]."""

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        return KIND.encode(x, self.info)


# reading ---------------------------------------------------------------------------------------


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


def read_image_folder(directory: Path, source: str) -> tuple[np.ndarray, np.ndarray | None, list]:
    """Same-sized PNG/JPEG images as uint8 (N, C, H, W), their labels (or None), class names."""
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
    return np.ascontiguousarray(x), y, class_names


def image_names(directory: Path, source: str) -> list[str]:
    """The file names (relative to `directory`) of `read_image_folder`'s images, in its order."""
    return [_describe(p, directory) for p in scan_image_folder(directory, source)[0]]


def load_image_folder(
    directory: Path,
    source: str,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    task: str = "auto",
) -> ImageDataset:
    """Load a folder of same-sized PNG/JPEG images into (N, C, H, W) uint8 with 256 levels."""
    x, y, class_names = read_image_folder(directory, source)
    split = SplitSettings(val_fraction, test_fraction, seed, task)
    names = image_names(directory, source)
    return image_dataset(
        source, x=x, y=y, levels=256, class_names=class_names, split=split, names=names
    )


def image_dataset(
    source: str,
    *,
    x: np.ndarray,
    y: np.ndarray | None,
    test_x: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    levels: int,
    class_names: list[str],
    split: SplitSettings,
    names: list[str] | None = None,
) -> ImageDataset:
    """Build an image Dataset from uint8 arrays (N, C, H, W) and optional int labels.

    With ``test_x`` the source has its own test set: it becomes the test split and val is carved
    from ``x``. Otherwise all examples are shuffled and cut into train/val/test. `names`: each
    example's file name, kept as the splits' `ids`.
    """
    if y is None and split.task == "classification":
        raise DataError(
            f"{source} has no labels, so data.task=classification cannot work; put the images "
            "in one sub-folder per class (or add a labels file), or use data.task=auto"
        )
    if split.task == "regression":
        raise DataError(
            f"{source} is image data with class labels, not numeric targets; data.task="
            "regression works only with CSV files; use data.task=auto or classification"
        )
    arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    ids: dict[str, list[str] | None] = dict.fromkeys(SPLITS)
    if test_x is not None:
        parts = carve_val(len(x), val_fraction=split.val_fraction, seed=split.seed, what=source)
        for name in ("train", "val"):
            idx = parts[name]
            arrays[name] = (x[idx], None if y is None else y[idx])
            ids[name] = None if names is None else [names[i] for i in idx]
        arrays["test"] = (np.array(test_x), None if test_y is None else np.array(test_y))
    else:
        parts = split_indices(
            len(x),
            val_fraction=split.val_fraction,
            test_fraction=split.test_fraction,
            seed=split.seed,
            what=source,
        )
        for name in SPLITS:
            idx = parts[name]
            arrays[name] = (x[idx], None if y is None else y[idx])
            ids[name] = None if names is None else [names[i] for i in idx]
    splits = {
        name: Split(
            x=torch.from_numpy(np.ascontiguousarray(ax, dtype=np.uint8)),
            y=None if ay is None else torch.from_numpy(np.ascontiguousarray(ay, dtype=np.int64)),
            ids=ids[name],
        )
        for name, (ax, ay) in arrays.items()
    }
    labelled = y is not None
    info = DataInfo(
        source=source,
        kind="image",
        shape=[int(d) for d in x.shape[1:]],
        num_classes=len(class_names) if labelled else 0,
        task="classification" if labelled else "none",
        class_names=list(class_names) if labelled else [],
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint(splits),
        record=ImageRecord(
            levels=int(levels), grey_fraction=grey_fraction(splits["train"].x, int(levels))
        ),
    )
    return ImageDataset(info=info, splits=splits)


def grey_fraction(x: torch.Tensor, levels: int) -> float:
    """Share of the stored values x (uint8, 0 .. levels - 1) strictly between 5% and 95% of the
    range: how far the images are from binary (0 for black-and-white images)."""
    if x.numel() == 0:
        return 0.0
    top = max(levels - 1, 1)
    grey = 0
    flat = x.reshape(-1)
    for start in range(0, flat.numel(), 1 << 24):  # bounded temporary memory
        part = flat[start : start + (1 << 24)].to(torch.int32)
        grey += int(((part * 20 > top) & (part * 20 < 19 * top)).sum())
    return round(grey / flat.numel(), 6)


def _channels_first(pixels: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (C, H, W)."""
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _idx_inputs(
    images: Path, labels: Path | None
) -> tuple[list[str], np.ndarray, list[str] | None]:
    """The images of one IDX file as (N, 1, H, W), named FILE:INDEX, and their labels."""
    x, y = read_idx_pair(images, labels)
    names = [f"{images.name}:{i}" for i in range(len(x))]
    return names, x[:, None], None if y is None else [str(int(v)) for v in y]


# the kind --------------------------------------------------------------------------------------


class ImageKind(DataKind):
    name = "image"
    description = (
        "a folder of IDX files (MNIST format, plain or .gz), a folder of PNG/JPEG images "
        "(directly or in one sub-folder per class)"
    )
    Config = NoSettings
    Record = ImageRecord
    suffixes = (".png", ".npy")
    builtins = BUILTINS

    def claims(self, path: Path) -> bool:
        if path.is_dir():
            return bool(find_idx_files(path)) or has_images(path)
        # a single image or IDX file is claimed so that `read` can say to give its folder
        return bool(IDX_NAME.match(path.name)) or path.suffix.lower() in IMAGE_SUFFIXES

    def read(
        self,
        path: Path,
        source: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> ImageDataset:
        if not path.is_dir():
            raise DataError(
                f"'{source}' is a single file; give the folder that holds it ({path.parent}) "
                "instead"
            )
        if find_idx_files(path):
            x, y, test_x, test_y, class_names = read_idx_dir(path, source)
            return image_dataset(
                source,
                x=x,
                y=y,
                test_x=test_x,
                test_y=test_y,
                levels=256,
                class_names=class_names,
                split=split,
            )
        x, y, class_names = read_image_folder(path, source)
        names = image_names(path, source)
        return image_dataset(
            source, x=x, y=y, levels=256, class_names=class_names, split=split, names=names
        )

    def read_builtin(
        self,
        name: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> ImageDataset:
        x, y, levels = builtin_images(name)
        class_names = [str(i) for i in range(int(y.max()) + 1)]
        return image_dataset(name, x=x, y=y, levels=levels, class_names=class_names, split=split)

    def write_each(
        self, samples: Any, folder: Path, info: DataInfo, *, stem: str = "sample", **options: Any
    ) -> list[Path]:
        """The PNG grid as STEM.png and each image at its own size as STEM-000.png, ..."""
        from genlab.io.images import save_image

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = self.write(samples, folder / f"{stem}.png", info, **options)
        images = torch.as_tensor(samples).detach().cpu()
        digits = max(3, len(str(len(images) - 1)))
        for i, image in enumerate(images):
            written.append(save_image(image, folder / f"{stem}-{i:0{digits}d}.png"))
        return written

    def read_inputs(self, path: Path, info: DataInfo) -> Inputs:
        """One PNG/JPEG file, a folder of them (directly or in class sub-folders, whose names
        become the labels), one IDX images file or a folder of IDX files (every image of each
        images file, named FILE:INDEX, labelled by its labels file): images of the run's size.
        Grayscale images are repeated to three channels for a colour model."""
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            pixels, _ = read_image(path, path.name)
            names, labels, x = [path.name], None, _channels_first(pixels)[None]
        elif path.is_file() and IDX_NAME.match(path.name):
            match = IDX_NAME.match(path.name)
            if match["kind"].lower() != "images":
                raise DataError(f"{path.name} holds labels; give its images file or its folder")
            twins = find_idx_files(path.parent)
            names, x, labels = _idx_inputs(path, twins.get((match["prefix"].lower(), "labels")))
        elif path.is_dir() and find_idx_files(path):
            files = find_idx_files(path)
            parts = [
                _idx_inputs(images, files.get((prefix, "labels")))
                for (prefix, what), images in sorted(files.items())
                if what == "images"
            ]
            if not parts:
                raise DataError(f"{path} holds IDX labels but no IDX images file; add one")
            names = [n for part in parts for n in part[0]]
            x = np.concatenate([part[1] for part in parts])
            labels = None
            if all(part[2] is not None for part in parts):
                labels = [label for part in parts for label in part[2]]
        elif path.is_dir():
            paths, ys, class_names = scan_image_folder(path, str(path))
            x, _, _ = read_image_folder(path, str(path))
            names = [_describe(p, path) for p in paths]
            labels = None if ys is None else [class_names[k] for k in ys]
        else:
            raise DataError(
                f"{path} is not an image (.png, .jpg, .jpeg), an IDX images file or a folder of "
                "them; give one of those"
            )
        x = torch.from_numpy(np.array(x, dtype=np.uint8))  # a writable copy, (N, C, H, W)
        c, h, w = info.shape
        if tuple(x.shape[2:]) != (h, w):
            raise DataError(
                f"{path} holds {x.shape[3]}x{x.shape[2]} images but the run's are {w}x{h} "
                "(width x height); resize them first"
            )
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != c:
            raise DataError(
                f"{path} holds colour images but the run's images are grayscale; convert them "
                "to grayscale first"
            )
        return Inputs(names=names, x=x.to(torch.float32) / 255, labels=labels)

    def encode(self, data: Any, info: DataInfo) -> torch.Tensor:
        """uint8 images (N, C, H, W) with `levels` levels -> float32 in [0, 1]."""
        x = torch.as_tensor(data)
        return x.to(torch.float32).div_(max(info.record.levels - 1, 1))

    def decode(self, x: Any, info: DataInfo) -> torch.Tensor:
        """float images in [0, 1] -> uint8 with `levels` levels (rounded, clipped)."""
        top = max(info.record.levels - 1, 1)
        scaled = torch.as_tensor(x).detach().to("cpu", torch.float64) * top
        return scaled.round().clamp_(0, top).to(torch.uint8)

    def write(self, samples: Any, path: Path, info: DataInfo, **options: Any) -> list[Path]:
        """Images (N, C, H, W) in [0, 1] -> a PNG grid (`nrow` images a row; default: a square)
        or their float32 values as .npy."""
        from genlab.io.images import save_grid

        path = Path(path)
        self.check_suffix(path)
        unknown = sorted(set(options) - {"nrow"})
        if unknown:
            raise UsageError(f"the image writer takes nrow, not {', '.join(unknown)}")
        images = torch.as_tensor(samples).detach().cpu()
        if images.ndim != 4:
            raise UsageError(f"images to write must be (N, C, H, W); got {tuple(images.shape)}")
        if path.suffix.lower() == ".png":
            save_grid(images, path, nrow=options.get("nrow"))
        else:
            buf = io.BytesIO()
            np.save(buf, images.numpy())
            write_bytes_atomic(path, buf.getvalue())
        return [path]


KIND = ImageKind()
