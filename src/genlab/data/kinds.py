"""The registry of data kinds: the only module that imports every `data/<kind>.py`.

Adding a kind: write `genlab/data/<kind>.py` (a `DataKind` subclass, instance `KIND`) and add
its line below. Its settings appear as `data.<kind>.*`, its built-ins join `BUILTINS`, the
loader asks it whether it claims a path, and `genlab sample` writes through its writer.
"""

from __future__ import annotations

from typing import Any

from genlab.data import audio, image, sequence, tabular, text
from genlab.data.kind import DataKind
from genlab.errors import UsageError

KINDS: dict[str, DataKind] = {
    "image": image.KIND,
    "text": text.KIND,
    "tabular": tabular.KIND,
    "audio": audio.KIND,
    "sequence": sequence.KIND,
}

BUILTINS: dict[str, str] = {
    name: description for kind in KINDS.values() for name, description in kind.builtins.items()
}
"""Every kind's built-in data sets: name -> description."""


def kind_of(info_or_name: Any) -> DataKind:
    """The data kind named by a string, or of a DataInfo (its `kind`)."""
    name = info_or_name if isinstance(info_or_name, str) else getattr(info_or_name, "kind", None)
    if name not in KINDS:
        raise UsageError(
            f"unknown data kind {name!r}; this genlab knows {', '.join(KINDS)} "
            "(a newer genlab may have written this data description)"
        )
    return KINDS[name]
