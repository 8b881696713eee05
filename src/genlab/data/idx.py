"""Parsing of IDX files (the MNIST format), plain or gzip-compressed: a helper of the image kind."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from genlab.errors import DataError

# train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], train-images.idx3-ubyte[.gz]
IDX_NAME = re.compile(
    r"^(?P<prefix>.+?)-(?P<kind>images|labels)[-.]idx(?P<ndim>\d)-ubyte(?P<gz>\.gz)?$",
    re.IGNORECASE,
)
TEST_PREFIXES = ("t10k", "test")
_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
_NDIM = {"images": 3, "labels": 1}


def find_idx_files(directory: Path) -> dict[tuple[str, str], Path]:
    """Map (prefix, "images"|"labels") to the IDX file for it; plain files win over .gz twins."""
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(directory.iterdir()):
        match = IDX_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        key = (match["prefix"].lower(), match["kind"].lower())
        if key in found and not found[key].name.lower().endswith(".gz"):
            continue  # keep the uncompressed copy
        found[key] = path
    return found


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when its name ends in .gz; DataError on any failure."""
    name = path.name
    try:
        if name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except EOFError as exc:
        raise DataError(
            f"{name} is a truncated gzip file (it ends before its compressed data does); "
            "re-download or replace the file"
        ) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{name} is not a valid gzip file ({exc}); re-download or replace it, or drop the "
            ".gz from its name if it is not compressed"
        ) from exc
    except OSError as exc:
        raise DataError(
            f"cannot read {name}: {exc.strerror or exc}; check that the file exists and is readable"
        ) from exc


def parse_idx(data: bytes, name: str, kind: str) -> np.ndarray:
    """Parse IDX bytes holding uint8 images (N, H, W) or labels (N,); DataError when malformed."""
    expected = _MAGIC[kind]
    ndim = _NDIM[kind]
    if len(data) < 4:
        raise DataError(
            f"{name} is truncated: it holds only {len(data)} bytes, less than an IDX header; "
            "re-download or replace the file"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != expected:
        if data[:2] == b"\x1f\x8b":
            hint = "it looks gzip-compressed, so add .gz to its name"
        elif magic in _MAGIC.values():
            other = "labels" if kind == "images" else "images"
            hint = f"it looks like an IDX {other} file, so check that the names are not swapped"
        else:
            hint = "re-download or replace the file"
        raise DataError(
            f"{name} is not an IDX {kind} file: its magic number is 0x{magic:08X}, expected "
            f"0x{expected:08X}; {hint}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{name} is truncated: its header needs {header} bytes but the file holds "
            f"{len(data)}; re-download or replace the file"
        )
    dims = [int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4)]
    count = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if kind == "images":
        promised = f"{dims[0]} images of {dims[1]}x{dims[2]}"
        unit = "pixels"
    else:
        promised = f"{dims[0]} labels"
        unit = "labels"
    if have < count:
        raise DataError(
            f"{name} is truncated: header says {promised} but the file holds {have} bytes of "
            f"{unit} (needs {count}); re-download or replace the file"
        )
    if have > count:
        raise DataError(
            f"{name} is corrupt: header says {promised} ({count} bytes) but {have - count} "
            "more bytes follow them; re-download or replace the file"
        )
    if count == 0:
        raise DataError(f"{name} holds no {kind} (header says {promised}); use another file")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=header).reshape(dims)


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read one IDX images or labels file (plain or .gz)."""
    return parse_idx(read_bytes(path), path.name, kind)


def read_idx_pair(
    images_path: Path, labels_path: Path | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The images (N, H, W) of an IDX file and the labels (N,) of its labels file (or None)."""
    images = read_idx(images_path, "images")
    if labels_path is None:
        return images, None
    labels = read_idx(labels_path, "labels")
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path.name} holds {len(labels)} labels but {images_path.name} holds "
            f"{len(images)} images; they must match, so re-download or replace the files"
        )
    return images, labels


def read_idx_dir(
    directory: Path, source: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, list[str]]:
    """The images (N, 1, H, W) and labels of a folder of IDX files, then those of its t10k/test
    pair (None when it has none), and the class names ("0", "1", ...; [] when unlabelled)."""
    files = find_idx_files(directory)
    prefixes = sorted({prefix for prefix, _ in files})
    for prefix in prefixes:
        if (prefix, "images") not in files:
            labels_name = files[(prefix, "labels")].name
            raise DataError(
                f"{labels_name} has no matching images file ({prefix}-images-idx3-ubyte[.gz]) "
                f"in {source}; add it or remove the labels file"
            )
    test_prefixes = [p for p in prefixes if p in TEST_PREFIXES]
    train_prefixes = [p for p in prefixes if p not in TEST_PREFIXES]
    if len(test_prefixes) > 1 or len(train_prefixes) > 1:
        names = ", ".join(files[(p, "images")].name for p in prefixes)
        raise DataError(
            f"{source} holds several IDX image sets ({names}); keep one training set and at "
            "most one test set (t10k or test) in the folder"
        )
    if not train_prefixes:  # only a test-named set: use it as the whole data
        train_prefixes, test_prefixes = test_prefixes, []
    train = train_prefixes[0]
    x, y = read_idx_pair(files[(train, "images")], files.get((train, "labels")))
    test_x = test_y = None
    if test_prefixes:
        test = test_prefixes[0]
        test_x, test_y = read_idx_pair(files[(test, "images")], files.get((test, "labels")))
        if (y is None) != (test_y is None):
            with_labels, without = (train, test) if y is not None else (test, train)
            raise DataError(
                f"{source} has labels for the '{with_labels}' images but not for the "
                f"'{without}' images; add the missing {without}-labels-idx1-ubyte file or "
                "remove the other labels file"
            )
        if test_x.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{files[(test, 'images')].name} holds {test_x.shape[1]}x{test_x.shape[2]} "
                f"images but {files[(train, 'images')].name} holds {x.shape[1]}x{x.shape[2]}; "
                "use files with one image size"
            )
        test_x = test_x[:, None]
    class_names: list[str] = []
    if y is not None:
        top = int(y.max()) if test_y is None else max(int(y.max()), int(test_y.max()))
        class_names = [str(i) for i in range(top + 1)]
    return x[:, None], y, test_x, test_y, class_names
