"""Data loading for genlab: built-in data sets and one module per data kind (image, text, tabular).

``load_dataset(spec, data_cfg)`` returns a :class:`Dataset` with a JSON-friendly
:class:`DataInfo` (a common header plus the kind's record) and deterministic "train", "val" and
"test" :class:`Split` objects. ``kind_of(info)`` gives the kind's codec and writer.
"""

from genlab.data.config import DataConfig
from genlab.data.core import DataInfo, Dataset, Split
from genlab.data.kinds import BUILTINS, KINDS, kind_of
from genlab.data.loader import load_dataset

__all__ = [
    "BUILTINS",
    "KINDS",
    "DataConfig",
    "DataInfo",
    "Dataset",
    "Split",
    "kind_of",
    "load_dataset",
]
