"""Audio: mono WAV clips (a file or a folder of them) -> mu-law tokens or float waveforms.

Every clip is read with scipy, normalised to float in [-1, 1] (8-bit, 16-bit, 32-bit and float
WAVs), resampled to one rate (`data.audio.sample_rate`; 0 = the rate most of the files have) and
cropped or zero-padded at its end to one length (`data.audio.seconds`; 0 = the longest clip, up
to LONGEST_CAP seconds). Clips are stored as 16-bit PCM, so a loaded data set is half the size of
a float copy.

Labels come from the clips' sub-folders (`labels=folders`: one sub-folder per class), from their
file names (`labels=pattern`, e.g. `{label}_{speaker}_{index}.wav`: `label` is the class,
`speaker` a second label kept with its names in the record), or nowhere (`none`); `auto` takes
sub-folders when the clips lie in them, else the pattern when every name matches it.

The model's form is set by `data.audio.encoding`: `mulaw` gives 256-level mu-law tokens (int64,
for autoregressive models such as WaveNet), `float` the waveform itself (float32 in [-1, 1], for
diffusion models). The codec decodes both forms, so samples of either kind of model are written
the same way: WAV files (8- or 16-bit PCM) plus a PNG of their spectrograms, or .npy.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from genlab.data.core import SPLITS, DataInfo, Dataset, Split, carve_val, split_indices
from genlab.data.kind import DataKind, SplitSettings
from genlab.errors import DataError, UsageError
from genlab.io.atomic import write_bytes_atomic

MU_LEVELS = 256
"""Levels of the mu-law code (8-bit mu-law, mu = 255)."""
LONGEST_CAP = 10.0
"""With `seconds=0`, clips are padded to the longest one, but to no more than this many seconds."""
MAX_RESAMPLE_FACTOR = 1000
"""Largest up or down factor of a rate change after reduction (beyond it resampling is absurd)."""
SILENCE_SECONDS = 0.25
"""Silence between the samples of a per-class WAV file."""
LABEL_MODES = ("auto", "folders", "pattern", "none")
ENCODINGS = ("mulaw", "float")


@dataclass
class AudioConfig:
    """The `data.audio.*` settings."""

    sample_rate: int = 0
    """Rate every clip is resampled to, in Hz; 0 keeps the data's own rate (its most common)."""
    seconds: float = 0.0
    """Length every clip is cropped or zero-padded to; 0 = the longest clip (at most 10 s)."""
    mix_to_mono: bool = False
    """Average the channels of stereo files; otherwise a stereo file is an error."""
    labels: Literal["auto", "folders", "pattern", "none"] = "auto"
    """Where class labels come from: sub-folders, the file-name pattern, nowhere, or auto."""
    pattern: str = "{label}_{speaker}_{index}.wav"
    """File-name pattern with fields in braces: {label} is the class, {speaker} a speaker label."""
    test_speakers: list[str] = field(default_factory=list)
    """Speakers whose clips form the test split (validation is carved from the others)."""
    encoding: Literal["mulaw", "float"] = "mulaw"
    """The model's form: 256-level mu-law tokens (autoregressive) or the float waveform."""


@dataclass
class AudioRecord:
    """The audio part of the data description."""

    sample_rate: int = 0
    """Hz of every clip."""
    length: int = 0
    """Samples per clip (after cropping or padding)."""
    encoding: str = "mulaw"
    """The model's form: mulaw (int64 tokens 0..levels-1) or float (waveform in [-1, 1])."""
    levels: int = MU_LEVELS
    """mu-law levels."""
    labels: str = "none"
    """Where the class labels came from: folders, pattern or none."""
    speaker_names: list[str] = field(default_factory=list)
    """Names of the speakers (index = the batch's "speaker" value); empty when none."""

    @property
    def vocab_size(self) -> int:
        """Token ids a sequence model reads: the mu-law levels (0 for float waveforms)."""
        return self.levels if self.encoding == "mulaw" else 0


# mu-law codec ----------------------------------------------------------------------------------
def mulaw_encode(wave: torch.Tensor, levels: int = MU_LEVELS) -> torch.Tensor:
    """Float waveform in [-1, 1] -> int64 mu-law tokens in 0..levels-1 (ITU-T G.711 curve)."""
    mu = levels - 1
    x = torch.as_tensor(wave, dtype=torch.float64).clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # companded, in [-1, 1]
    return torch.round((y + 1) / 2 * mu).to(torch.int64)


def mulaw_decode(tokens: torch.Tensor, levels: int = MU_LEVELS) -> torch.Tensor:
    """int mu-law tokens in 0..levels-1 -> float32 waveform in [-1, 1]."""
    mu = levels - 1
    t = torch.as_tensor(tokens)
    if t.is_floating_point():
        raise UsageError("mu-law tokens must be integers; got a float tensor")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > mu):
        raise UsageError(f"mu-law tokens must lie in 0..{mu}; got {int(t.min())}..{int(t.max())}")
    y = t.to(torch.float64) * (2.0 / mu) - 1.0
    x = torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
    return x.to(torch.float32)


# reading ---------------------------------------------------------------------------------------
def wav_files(path: Path) -> list[Path]:
    """The WAV files at `path`: the file itself, or a folder's .wav files sorted by path."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".wav")
    return [path]


def read_wav(path: Path, *, mix_to_mono: bool = False) -> tuple[int, np.ndarray]:
    """(rate, float64 mono waveform in [-1, 1]) of one WAV file; a one-line DataError if bad."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except (ValueError, EOFError, OSError, IndexError, TypeError, struct.error) as exc:
        raise DataError(
            f"'{path}' is not a readable WAV file ({exc}); give PCM or float WAV files"
        ) from None
    if data.dtype == np.uint8:
        wave = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        wave = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    elif data.dtype.kind == "f":
        wave = data.astype(np.float64)
        if not np.isfinite(wave).all():
            raise DataError(f"'{path}' holds NaN or infinite samples; give a clean WAV file")
        wave = np.clip(wave, -1.0, 1.0)
    else:
        raise DataError(f"'{path}' has samples of type {data.dtype}, which genlab cannot read")
    if wave.ndim == 2:
        if wave.shape[1] == 1:
            wave = wave[:, 0]
        elif mix_to_mono:
            wave = wave.mean(axis=1)
        else:
            raise DataError(
                f"'{path}' has {wave.shape[1]} channels but mono audio is expected; convert it "
                "to mono or set data.audio.mix_to_mono=true"
            )
    if rate <= 0:
        raise DataError(f"'{path}' states a sample rate of {rate} Hz; the file is corrupt")
    return int(rate), wave


def resample(wave: np.ndarray, rate: int, target: int, *, what: str) -> np.ndarray:
    """`wave` at `rate` Hz -> at `target` Hz (polyphase filter); DataError for absurd ratios."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    up, down = target // g, rate // g
    if max(up, down) > MAX_RESAMPLE_FACTOR:
        raise DataError(
            f"'{what}' is at {rate} Hz, which cannot be resampled to {target} Hz (a ratio of "
            f"{up}/{down}); convert it first or choose another data.audio.sample_rate"
        )
    return resample_poly(wave, up, down)


def pattern_regex(pattern: str) -> tuple[re.Pattern[str], list[str]]:
    """A regular expression for a file-name pattern such as `{label}_{speaker}_{index}.wav`."""
    parts = re.split(r"\{([^{}]*)\}", pattern)
    names = parts[1::2]
    if not names:
        raise UsageError(
            f"data.audio.pattern {pattern!r} names no fields; write fields in braces, e.g. "
            "'{label}_{speaker}_{index}.wav'"
        )
    for name in names:
        if not name.isidentifier():
            raise UsageError(
                f"data.audio.pattern {pattern!r} has the field {{{name}}}; field names are "
                "words such as label, speaker or index"
            )
    if len(set(names)) != len(names):
        raise UsageError(f"data.audio.pattern {pattern!r} names a field twice")
    if "{" in "".join(parts[0::2]) or "}" in "".join(parts[0::2]):
        raise UsageError(f"data.audio.pattern {pattern!r} has an unmatched brace")
    body = "".join(
        re.escape(text) if i % 2 == 0 else f"(?P<{text}>.+?)" for i, text in enumerate(parts)
    )
    return re.compile(f"^{body}$", re.IGNORECASE), names


def _natural(name: str) -> tuple[int, int | str]:
    """Sort key: numeric names by value, before the others by text."""
    return (0, int(name)) if name.isdigit() else (1, name)


def _pattern_fields(
    files: list[Path], pattern: str, *, strict: bool
) -> list[dict[str, str]] | None:
    """The pattern's fields for every file; None (not strict) or a DataError when one fails."""
    regex, _ = pattern_regex(pattern)
    whole = pattern.lower().endswith(".wav")
    out = []
    for f in files:
        m = regex.match(f.name if whole else f.stem)
        if m is None:
            if not strict:
                return None
            raise DataError(
                f"'{f}' does not match data.audio.pattern {pattern!r}; rename it, change the "
                "pattern, or set data.audio.labels=folders or none"
            )
        out.append(m.groupdict())
    return out


def _labels(
    root: Path, files: list[Path], cfg: AudioConfig
) -> tuple[str, list[str] | None, list[str] | None]:
    """(label mode used, class name per file or None, speaker name per file or None)."""
    mode = cfg.labels
    in_folders = root.is_dir() and all(len(f.relative_to(root).parts) > 1 for f in files)
    if mode == "auto":
        if in_folders and len({f.relative_to(root).parts[0] for f in files}) > 1:
            mode = "folders"
        elif "{" in cfg.pattern and _pattern_fields(files, cfg.pattern, strict=False):
            mode = "pattern"
        else:
            mode = "none"
    if mode == "folders":
        if not root.is_dir():
            raise UsageError(
                "data.audio.labels=folders needs a folder with one sub-folder per class, not a file"
            )
        for f in files:
            if len(f.relative_to(root).parts) < 2:
                raise DataError(
                    f"'{f}' lies directly in '{root}', not in a class sub-folder; move it into "
                    "one, or set data.audio.labels=pattern or none"
                )
        return mode, [f.relative_to(root).parts[0] for f in files], None
    if mode == "pattern":
        fields = _pattern_fields(files, cfg.pattern, strict=True)
        assert fields is not None
        labels = [d["label"] for d in fields] if "label" in fields[0] else None
        speakers = [d["speaker"] for d in fields] if "speaker" in fields[0] else None
        return mode, labels, speakers
    return "none", None, None


def _check_config(cfg: AudioConfig) -> None:
    if isinstance(cfg.sample_rate, bool) or not isinstance(cfg.sample_rate, int):
        raise UsageError(
            f"data.audio.sample_rate must be a whole number of Hz, got {cfg.sample_rate!r}"
        )
    if cfg.sample_rate < 0:
        raise UsageError(
            f"data.audio.sample_rate must be 0 (the data's rate) or positive, got {cfg.sample_rate}"
        )
    if not math.isfinite(float(cfg.seconds)) or cfg.seconds < 0:
        raise UsageError(
            f"data.audio.seconds must be 0 (the longest clip) or positive, got {cfg.seconds}"
        )
    if cfg.labels not in LABEL_MODES:
        raise UsageError(
            f"unknown data.audio.labels {cfg.labels!r}; use one of: {', '.join(LABEL_MODES)}"
        )
    if cfg.encoding not in ENCODINGS:
        raise UsageError(
            f"unknown data.audio.encoding {cfg.encoding!r}; use one of: {', '.join(ENCODINGS)}"
        )
    pattern_regex(cfg.pattern)


@dataclass
class AudioSplit(Split):
    """One split: `x` int16 PCM clips (N, T), `y` class ids or None, `speaker` ids or None."""

    speaker: torch.Tensor | None = None
    length: torch.Tensor | None = None
    """Samples of each clip before padding (N,)."""


class AudioDataset(Dataset):
    """Clips of one length. Batches: "x" mu-law tokens (B, T) int64 or float32 waveforms (B, T)
    per the record's encoding, "y" class ids and "speaker" ids where the data has them."""

    def batch(self, split: str, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if split not in self.splits:
            raise UsageError(f"unknown split '{split}'; use one of: {', '.join(self.splits)}")
        part: AudioSplit = self.splits[split]  # type: ignore[assignment]
        index = torch.as_tensor(index, dtype=torch.long).cpu()
        wave = part.x[index].to(torch.float32) / 32768.0
        out = {"x": KIND.encode(wave, self.info)}
        if part.y is not None:
            out["y"] = part.y[index]
        if part.speaker is not None:
            out["speaker"] = part.speaker[index]
        return out


def _hash(splits: dict[str, AudioSplit], record: AudioRecord) -> str:
    digest = hashlib.sha256(f"{record.sample_rate}:{record.length}".encode())
    for name in SPLITS:
        part = splits[name]
        for t in (part.x, part.y, part.speaker):
            if t is not None:
                digest.update(np.ascontiguousarray(t.numpy()).data)
    return digest.hexdigest()


def _info(
    *,
    source: str,
    kind: str,
    shape: list[int],
    class_names: list[str],
    splits: dict[str, Any],
    fingerprint: str,
    record: Any,
    vocab_size: int = 0,
) -> DataInfo:
    """The data description of a loaded audio data set (the one DataInfo call of this module)."""
    info = DataInfo(
        source=source,
        kind=kind,
        shape=shape,
        num_classes=len(class_names),
        task="classification" if class_names else "none",
        class_names=list(class_names),
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint,
        record=record,
    )
    return info


def read_audio(path: Path, source: str, split: SplitSettings, cfg: AudioConfig) -> AudioDataset:
    """Read, resample, crop/pad, label and split WAV clips (see the module docstring)."""
    _check_config(cfg)
    if not path.exists():
        raise DataError(f"no audio at '{source}': no such file or folder")
    if path.is_file() and path.suffix.lower() != ".wav":
        raise DataError(f"'{source}' is not a .wav file; give a WAV file or a folder of them")
    files = wav_files(path)
    if not files:
        raise DataError(f"found no .wav files in the folder '{source}'; give a folder of WAV files")
    mode, labels, speakers = _labels(path, files, cfg)
    if split.task == "regression":
        raise DataError(
            f"{source} is audio with class labels, not numeric targets; use data.task=auto"
        )
    if split.task == "classification" and labels is None:
        raise DataError(
            f"{source} has no class labels, so data.task=classification cannot work; put the "
            "clips in one sub-folder per class or name them after data.audio.pattern"
        )

    clips = [read_wav(f, mix_to_mono=cfg.mix_to_mono) for f in files]
    rates = Counter(rate for rate, _ in clips)
    target = cfg.sample_rate or max(rates, key=lambda r: (rates[r], r))
    waves = [resample(w, r, target, what=str(f)) for f, (r, w) in zip(files, clips, strict=True)]
    longest = max(len(w) for w in waves)
    if cfg.seconds > 0:
        length = max(1, round(cfg.seconds * target))
    else:
        length = min(longest, round(LONGEST_CAP * target))
    if length < 2:
        raise DataError(f"the clips of '{source}' hold fewer than 2 samples; give longer clips")
    pcm = np.zeros((len(waves), length), dtype=np.int16)
    lengths = np.zeros(len(waves), dtype=np.int64)
    for i, w in enumerate(waves):
        n = min(len(w), length)
        pcm[i, :n] = np.clip(np.round(w[:n] * 32768.0), -32768, 32767)
        lengths[i] = n

    class_names = sorted(set(labels), key=_natural) if labels is not None else []
    speaker_names = sorted(set(speakers), key=_natural) if speakers is not None else []
    y = np.array([class_names.index(v) for v in labels]) if labels is not None else None
    spk = np.array([speaker_names.index(v) for v in speakers]) if speakers is not None else None

    idx = _split(len(files), spk, speaker_names, split, cfg, source)
    splits = {
        name: AudioSplit(
            x=torch.from_numpy(pcm[i]),
            y=None if y is None else torch.from_numpy(y[i].astype(np.int64)),
            speaker=None if spk is None else torch.from_numpy(spk[i].astype(np.int64)),
            length=torch.from_numpy(lengths[i]),
        )
        for name, i in idx.items()
    }
    record = AudioRecord(
        sample_rate=int(target),
        length=int(length),
        encoding=cfg.encoding,
        levels=MU_LEVELS,
        labels=mode,
        speaker_names=speaker_names,
    )
    info = _info(
        source=source,
        kind=AudioKind.name,
        shape=[int(length)],
        class_names=class_names,
        splits=splits,
        fingerprint=_hash(splits, record),
        record=record,
        vocab_size=MU_LEVELS if cfg.encoding == "mulaw" else 0,
    )
    return AudioDataset(info=info, splits=splits)  # type: ignore[arg-type]


def _split(
    n: int,
    spk: np.ndarray | None,
    speaker_names: list[str],
    split: SplitSettings,
    cfg: AudioConfig,
    source: str,
) -> dict[str, np.ndarray]:
    """Index arrays of train/val/test: shuffled by the seed, or the test speakers held out."""
    if not cfg.test_speakers:
        return split_indices(
            n,
            val_fraction=split.val_fraction,
            test_fraction=split.test_fraction,
            seed=split.seed,
            what=source,
        )
    if spk is None:
        raise UsageError(
            "data.audio.test_speakers needs speaker labels; name the files after a pattern "
            "with {speaker}, e.g. '{label}_{speaker}_{index}.wav'"
        )
    unknown = [s for s in cfg.test_speakers if s not in speaker_names]
    if unknown:
        raise UsageError(
            f"data.audio.test_speakers names {', '.join(unknown)}, not among the speakers of "
            f"{source} ({', '.join(speaker_names)})"
        )
    held = np.isin(spk, [speaker_names.index(s) for s in cfg.test_speakers])
    rest, test = np.flatnonzero(~held), np.flatnonzero(held)
    parts = carve_val(len(rest), val_fraction=split.val_fraction, seed=split.seed, what=source)
    return {"train": rest[parts["train"]], "val": rest[parts["val"]], "test": test}


# writing ---------------------------------------------------------------------------------------
def pcm_bytes(wave: np.ndarray, rate: int, bits: int) -> bytes:
    """A mono WAV file's bytes of a float waveform in [-1, 1] as 8-bit or 16-bit PCM."""
    from scipy.io import wavfile

    wave = np.clip(np.asarray(wave, dtype=np.float64), -1.0, 1.0)
    if bits == 16:
        data = np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)
    elif bits == 8:
        data = np.clip(np.round(wave * 128.0) + 128, 0, 255).astype(np.uint8)
    else:
        raise UsageError(f"WAV output is 8-bit or 16-bit PCM; got bits={bits}")
    buf = io.BytesIO()
    wavfile.write(buf, int(rate), data)
    return buf.getvalue()


def spectrogram_png(waves: np.ndarray, rate: int, *, n_fft: int = 256) -> bytes:
    """A PNG of the log-magnitude spectrograms of waveforms (one row each, low pitch at bottom)."""
    from PIL import Image

    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    n_fft = max(16, min(n_fft, 1 << int(math.log2(max(x.shape[1], 16)))))
    hop = n_fft // 4
    spec = torch.stft(
        x, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), return_complex=True
    ).abs()  # (N, F, frames)
    db = 20 * torch.log10(spec + 1e-5)
    top = float(db.max())
    img = ((db - (top - 80.0)).clamp(0, 80.0) / 80.0 * 255).round().to(torch.uint8)
    img = img.flip(1)  # low frequencies at the bottom of each row
    gap = torch.full((img.shape[0], 2, img.shape[2]), 64, dtype=torch.uint8)
    rows = torch.cat([img, gap], dim=1).flatten(0, 1)[:-2]  # (N * (F + 2) - 2, frames)
    buf = io.BytesIO()
    Image.fromarray(rows.numpy(), mode="L").save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class AudioWriteOptions:
    """The `genlab sample` flags of audio output."""

    bits: int = 16
    """WAV samples: 16-bit or 8-bit PCM."""
    per_class: bool = False
    """One WAV per class holding -n samples of it, 0.25 s of silence between them
    (class-conditional runs; with a class given, that class only)."""

    def validate(self) -> None:
        if self.bits not in (8, 16):
            raise UsageError(f"--bits must be 8 or 16; got {self.bits}")


class AudioKind(DataKind):
    """Mono WAV clips, as mu-law tokens or float waveforms."""

    name: ClassVar[str] = "audio"
    description: ClassVar[str] = "a .wav file or a folder of them (mono, resampled to one rate)"
    Config: ClassVar[type] = AudioConfig
    Record: ClassVar[type] = AudioRecord
    WriteOptions: ClassVar[type] = AudioWriteOptions
    suffixes: ClassVar[tuple[str, ...]] = (".wav", ".npy")
    tokens: ClassVar[bool] = True  # with data.audio.encoding=mulaw

    def claims(self, path: Path) -> bool:
        if path.is_dir():
            return any(p.suffix.lower() == ".wav" and p.is_file() for p in path.rglob("*"))
        return path.suffix.lower() == ".wav"

    def read(
        self,
        path: Path,
        source: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> AudioDataset:
        """Read clips; `context` is ignored (an example is a whole clip of `seconds`)."""
        return read_audio(Path(path), source, split, cfg)

    # codec -------------------------------------------------------------------------------------
    def encode(self, data: Any, info: Any) -> torch.Tensor:
        """Waveforms in [-1, 1] (T,) or (N, T) -> mu-law tokens (int64) or float32, per the
        record's encoding."""
        wave = torch.as_tensor(np.asarray(data, dtype=np.float32))
        if info.record.encoding == "mulaw":
            return mulaw_encode(wave, info.record.levels)
        return wave.clamp(-1.0, 1.0)

    def decode(self, x: Any, info: Any) -> np.ndarray:
        """Samples in either form (integer mu-law tokens or float waveforms) -> float32
        waveforms in [-1, 1] as numpy, same shape."""
        t = torch.as_tensor(x).detach().cpu()
        if t.is_floating_point():
            return t.to(torch.float32).clamp(-1.0, 1.0).numpy()
        return mulaw_decode(t, info.record.levels).numpy()

    # writing -----------------------------------------------------------------------------------
    def write_each(
        self, samples: Any, folder: Path, info: Any, *, stem: str = "sample", **options: Any
    ) -> list[Path]:
        """`write` already writes one file per sample (STEM-000.wav, ...) and a spectrogram PNG:
        into `folder`."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        return self.write(samples, Path(folder) / f"{stem}.wav", info, **options)

    def write(
        self,
        samples: Any,
        path: Path,
        info: Any,
        *,
        bits: int = 16,
        per_class: bool = False,
        classes: Any = None,
        spectrogram: bool = True,
        **options: Any,
    ) -> list[Path]:
        """Write samples as WAV (`stem-000.wav`, ...; with `per_class`, one `stem-<class>.wav`
        per class with SILENCE_SECONDS between samples) plus `stem-spectrogram.png`, or as a
        .npy of float32 waveforms (N, T).

        `classes`: the class id of each sample (or one id for all), naming per-class files."""
        if options:
            raise UsageError(f"unknown audio output options: {', '.join(sorted(options))}")
        path = Path(path)
        self.check_suffix(path)
        waves = self.decode(samples, info)
        if waves.ndim == 1:
            waves = waves[None]
        if waves.ndim != 2:
            raise UsageError(f"audio samples must be (N, T) or (T,); got shape {waves.shape}")
        if path.suffix.lower() == ".npy":
            buf = io.BytesIO()
            np.save(buf, waves.astype(np.float32))
            write_bytes_atomic(path, buf.getvalue())
            return [path]
        if bits not in (8, 16):
            raise UsageError(f"WAV output is 8-bit or 16-bit PCM; got bits={bits}")
        rate = int(info.record.sample_rate)
        stem, parent = path.stem, path.parent
        written: list[Path] = []
        if per_class:
            ids = _class_ids(classes, len(waves))
            gap = np.zeros(round(SILENCE_SECONDS * rate), dtype=np.float32)
            names = list(info.class_names)
            for c in sorted(set(ids), key=lambda v: (v is None, v)):
                parts = [w for w, k in zip(waves, ids, strict=True) if k == c]
                joined = np.concatenate([p for w in parts for p in (w, gap)][:-1])
                label = "all" if c is None else (names[c] if c < len(names) else str(c))
                out = parent / f"{stem}-{_safe(label)}.wav"
                write_bytes_atomic(out, pcm_bytes(joined, rate, bits))
                written.append(out)
        else:
            for i, w in enumerate(waves):
                out = parent / f"{stem}-{i:03d}.wav"
                write_bytes_atomic(out, pcm_bytes(w, rate, bits))
                written.append(out)
        if spectrogram:
            out = parent / f"{stem}-spectrogram.png"
            write_bytes_atomic(out, spectrogram_png(waves, rate))
            written.append(out)
        return written


def _class_ids(classes: Any, n: int) -> list[int | None]:
    if classes is None:
        return [None] * n
    if isinstance(classes, int):
        return [int(classes)] * n
    ids = [int(c) for c in classes]
    if len(ids) != n:
        raise UsageError(f"got {len(ids)} class ids for {n} audio samples")
    return ids  # type: ignore[return-value]


def _safe(label: str) -> str:
    """A class name made safe for a file name."""
    return re.sub(r"[^\w.-]+", "_", label).strip("._") or "class"


KIND = AudioKind()
