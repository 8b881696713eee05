"""Data loading for genlab: built-in data sets, IDX (MNIST) folders, image folders and CSV files.

``load_dataset(spec)`` returns a :class:`Dataset` with a JSON-friendly :class:`DataInfo` and
deterministic "train", "val" and "test" :class:`Split` objects.
"""

from genlab.data.builtin import BUILTINS
from genlab.data.core import DataInfo, Dataset, Split
from genlab.data.loader import load_dataset

__all__ = ["BUILTINS", "DataInfo", "Dataset", "Split", "load_dataset"]
