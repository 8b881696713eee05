"""Polyphonic music: note lists (JSON) and MIDI files -> event tokens or piano rolls.

A piece is a list of time steps on a fixed grid, each step the sorted list of MIDI pitches that
sound during it (an empty list is a rest). This is the JSON format of the JSB Chorales
(Boulanger-Lewandowski et al. 2012): a dict `train`/`valid`/`test` -> list of pieces; such a
file's own splits are used. A plain JSON list of pieces, and MIDI files (a .mid/.midi file or a
folder of them, quantised to `data.sequence.steps_per_quarter` steps per quarter note), are
split by the common `data.*` settings. Held and repeated notes are not told apart.

The model's form (`data.sequence.encoding`):
- `events`: a token stream for autoregressive models. A piece is `BOS`, then per step its
  pitches in ascending order followed by `STEP`, then `EOS`; token ids 0..P-1 are the pitches
  `low..high` (P of them), then STEP, BOS, EOS (vocab = P + 3). The pieces of a split are
  concatenated and cut into windows of `context + 1` tokens as text is: training windows start
  at every token, validation and test windows tile their split.
- `roll`: piano rolls (P pitches x `context` steps, float32 0/1) for non-autoregressive models:
  windows inside each piece (pieces shorter than `context` are padded with rests).

Samples are written as MIDI (one file per piece), the same JSON note lists, WAV rendered by a
small additive sine synthesizer (no system packages needed), or .npy piano rolls.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from genlab.data.core import SPLITS, DataInfo, Dataset, split_indices
from genlab.data.kind import DataKind, SplitSettings
from genlab.errors import DataError, UsageError
from genlab.io.atomic import write_bytes_atomic, write_text_atomic

MIDI_SUFFIXES = (".mid", ".midi")
JSON_SPLITS = {"train": "train", "valid": "val", "val": "val", "test": "test"}
DEFAULT_CONTEXT = {"events": 256, "roll": 64}
"""Tokens (events) or steps (roll) per example when the model does not say."""
TICKS_PER_STEP = 96
"""MIDI ticks of one grid step in written files."""
SYNTH_RATE = 16000
"""Sample rate of WAV renderings."""
ENCODINGS = ("events", "roll")
MAX_TRANSPOSE = 24
"""The widest transposition augmentation (two octaves each way)."""
Piece = list[list[int]]


@dataclass
class SequenceConfig:
    """The `data.sequence.*` settings."""

    steps_per_quarter: int = 0
    """Grid steps per quarter note: MIDI is quantised to it, output is timed by it; 0 = 4 for
    MIDI files, 1 for JSON note lists (the grid of jsb-chorales-quarter.json)."""
    tempo_bpm: float = 100.0
    """Quarter notes per minute of written MIDI and WAV."""
    pitches: Literal["data", "midi"] = "data"
    """Pitch range of the vocabulary: the data's lowest to highest pitch, or all 128."""
    encoding: Literal["events", "roll"] = "events"
    """The model's form: event tokens (autoregressive) or piano-roll windows."""
    transpose: int = 0
    """Training-only augmentation: add copies of every training piece transposed by each shift
    of -N..N semitones (0: off). The vocabulary widens by N on each side, so every copy fits;
    validation and test pieces are never transposed."""


@dataclass
class SequenceRecord:
    """The music part of the data description."""

    encoding: str = "events"
    """events (int64 token windows) or roll (float32 pitches x steps windows)."""
    low: int = 0
    """Lowest pitch of the vocabulary (token id 0)."""
    high: int = 127
    """Highest pitch of the vocabulary."""
    vocab_size: int = 131
    """Token ids: high - low + 1 pitches, then STEP, BOS, EOS."""
    context: int = 0
    """Tokens (events) or steps (roll) a model reads per example."""
    steps_per_quarter: int = 1
    """Grid steps per quarter note."""
    tempo_bpm: float = 100.0
    """Quarter notes per minute of written MIDI and WAV."""
    transpose: int = 0
    """Training pieces were augmented by every transposition of -N..N semitones (0: none)."""


# the event code --------------------------------------------------------------------------------
def specials(low: int, high: int) -> tuple[int, int, int]:
    """Token ids (STEP, BOS, EOS) of a vocabulary of pitches low..high."""
    n = high - low + 1
    return n, n + 1, n + 2


def piece_tokens(piece: Piece, low: int, high: int) -> np.ndarray:
    """A piece -> int64 tokens: BOS, per step its pitches ascending then STEP, EOS."""
    step, bos, eos = specials(low, high)
    out = [bos]
    for pitches in piece:
        for p in sorted(set(pitches)):
            if not low <= p <= high:
                raise DataError(
                    f"pitch {p} lies outside the vocabulary's range {low}..{high}; use data with "
                    "pitches in range or data.sequence.pitches=midi"
                )
            out.append(p - low)
        out.append(step)
    out.append(eos)
    return np.asarray(out, dtype=np.int64)


def tokens_piece(tokens: Any, low: int, high: int) -> Piece:
    """Tokens -> a piece: BOS is skipped, STEP closes a step, the first EOS ends the piece, and
    pitches left open at the end form a last step."""
    step, bos, eos = specials(low, high)
    ids = [int(t) for t in np.asarray(tokens).reshape(-1)]
    bad = [t for t in ids if not 0 <= t <= eos]
    if bad:
        raise UsageError(f"music token {bad[0]} is outside the vocabulary 0..{eos}")
    piece: Piece = []
    pending: set[int] = set()
    for t in ids:
        if t == eos:
            break
        if t == step:
            piece.append(sorted(pending))
            pending = set()
        elif t != bos:
            pending.add(t + low)
    if pending:
        piece.append(sorted(pending))
    return piece


def piece_roll(piece: Piece, low: int, high: int, steps: int | None = None) -> np.ndarray:
    """A piece -> a float32 piano roll (high - low + 1, steps), rests padded at the end."""
    steps = len(piece) if steps is None else steps
    roll = np.zeros((high - low + 1, steps), dtype=np.float32)
    for t, pitches in enumerate(piece[:steps]):
        for p in pitches:
            if not low <= p <= high:
                raise DataError(f"pitch {p} lies outside the range {low}..{high} of the roll")
            roll[p - low, t] = 1.0
    return roll


def roll_piece(roll: Any, low: int) -> Piece:
    """A piano roll (pitches, steps) -> a piece: a pitch sounds where its value is above 0.5."""
    on = np.asarray(roll) > 0.5
    return [[int(p) + low for p in np.flatnonzero(on[:, t])] for t in range(on.shape[1])]


def note_runs(piece: Piece) -> list[tuple[int, int, int]]:
    """(pitch, first step, end step) of each held note: a pitch sounding in consecutive steps."""
    runs: list[tuple[int, int, int]] = []
    open_at: dict[int, int] = {}
    for t, pitches in enumerate([*piece, []]):
        now = set(pitches)
        for p in sorted(set(open_at) - now):
            runs.append((p, open_at.pop(p), t))
        for p in sorted(now - set(open_at)):
            open_at[p] = t
    return sorted(runs, key=lambda r: (r[1], r[0]))


# reading ---------------------------------------------------------------------------------------
def _canonical(piece: Any, what: str) -> Piece:
    """A checked piece with each step's pitches sorted and unique."""
    if not isinstance(piece, list):
        raise DataError(
            f"{what} is not a list of time steps; see the JSB Chorales note-list format"
        )
    out: Piece = []
    for t, step in enumerate(piece):
        if not isinstance(step, list):
            raise DataError(f"{what}, step {t} is not a list of MIDI pitches")
        pitches = set()
        for p in step:
            if isinstance(p, bool) or not isinstance(p, int | float) or p != int(p):
                raise DataError(f"{what}, step {t} holds {p!r}, not a MIDI pitch number")
            if not 0 <= p <= 127:
                raise DataError(f"{what}, step {t} holds pitch {p}, outside MIDI's 0..127")
            pitches.add(int(p))
        out.append(sorted(pitches))
    if not out:
        raise DataError(f"{what} has no time steps")
    return out


def read_json(path: Path) -> dict[str, list[Piece]] | list[Piece]:
    """A JSON note-list file: a dict of splits (train/valid/test) or a plain list of pieces."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"'{path}' is not readable JSON ({exc}); give a note-list file") from None
    if isinstance(data, list):
        return [_canonical(p, f"'{path}' piece {i}") for i, p in enumerate(data)]
    if not isinstance(data, dict):
        raise DataError(f"'{path}' holds neither a list of pieces nor a dict of splits")
    unknown = sorted(set(data) - set(JSON_SPLITS))
    if unknown or not {"train", "test"} <= set(data) or not {"valid", "val"} & set(data):
        raise DataError(
            f"'{path}' has the keys {', '.join(sorted(data))}; a note-list file has the keys "
            "train, valid and test (each a list of pieces), or is a plain list of pieces"
        )
    out: dict[str, list[Piece]] = {}
    for key, pieces in data.items():
        if not isinstance(pieces, list):
            raise DataError(f"'{path}' {key} is not a list of pieces")
        out[JSON_SPLITS[key]] = [
            _canonical(p, f"'{path}' {key} piece {i}") for i, p in enumerate(pieces)
        ]
    return out


def read_midi(path: Path, steps_per_quarter: int) -> Piece:
    """A MIDI file quantised to `steps_per_quarter` (drums on channel 10 left out)."""
    import mido

    try:
        mid = mido.MidiFile(path)
        tpb = int(mid.ticks_per_beat)
        messages = list(mido.merge_tracks(mid.tracks))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"'{path}' is not a readable MIDI file ({exc})") from None
    if tpb <= 0:
        raise DataError(f"'{path}' has {tpb} ticks per quarter note; the file is corrupt")
    tick = 0
    started: dict[tuple[int, int], list[int]] = {}
    notes: list[tuple[int, int, int]] = []
    for msg in messages:
        tick += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            started.setdefault(key, []).append(tick)
        elif started.get(key):
            notes.append((msg.note, started[key].pop(0), tick))
    notes += [(note, t0, tick) for (_, note), ticks in started.items() for t0 in ticks]
    if not notes:
        raise DataError(f"'{path}' holds no notes; give a MIDI file with notes")

    def step(t: int) -> int:
        return math.floor(t * steps_per_quarter / tpb + 0.5)

    length = max(max(step(t1), step(t0) + 1) for _, t0, t1 in notes)
    grid: list[set[int]] = [set() for _ in range(length)]
    for note, t0, t1 in notes:
        for t in range(step(t0), max(step(t1), step(t0) + 1)):
            grid[t].add(note)
    return [sorted(s) for s in grid]


def midi_files(path: Path) -> list[Path]:
    """The MIDI files at `path`: the file itself, or a folder's .mid/.midi files by path."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES
        )
    return [path]


def _check_config(cfg: SequenceConfig) -> None:
    spq = cfg.steps_per_quarter
    if isinstance(spq, bool) or not isinstance(spq, int) or spq < 0:
        raise UsageError(
            "data.sequence.steps_per_quarter must be 0 (auto) or a positive whole number, "
            f"got {spq!r}"
        )
    if not math.isfinite(float(cfg.tempo_bpm)) or cfg.tempo_bpm <= 0:
        raise UsageError(f"data.sequence.tempo_bpm must be positive, got {cfg.tempo_bpm}")
    if cfg.pitches not in ("data", "midi"):
        raise UsageError(f"unknown data.sequence.pitches {cfg.pitches!r}; use data or midi")
    if cfg.encoding not in ENCODINGS:
        raise UsageError(
            f"unknown data.sequence.encoding {cfg.encoding!r}; use one of: {', '.join(ENCODINGS)}"
        )
    n = cfg.transpose
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_TRANSPOSE:
        raise UsageError(
            f"data.sequence.transpose must be a whole number of semitones 0..{MAX_TRANSPOSE}, "
            f"got {n!r}"
        )


def transposed(pieces: list[Piece], n: int, low: int, high: int) -> list[Piece]:
    """The pieces, then their copies shifted by each of -n..n semitones except 0 whose pitches
    all stay within low..high (training-data augmentation)."""
    out = list(pieces)
    for shift in (s for s in range(-n, n + 1) if s):
        for piece in pieces:
            pitches = [p for step in piece for p in step]
            if pitches and low <= min(pitches) + shift and max(pitches) + shift <= high:
                out.append([[p + shift for p in step] for step in piece])
    return out


@dataclass
class EventSplit:
    """Windows of `context + 1` tokens of a split's token stream, starting every `stride`."""

    tokens: np.ndarray
    context: int
    stride: int

    def __len__(self) -> int:
        if len(self.tokens) < self.context + 1:
            return 0
        return (len(self.tokens) - self.context - 1) // self.stride + 1

    def windows(self, index: np.ndarray) -> np.ndarray:
        starts = index * self.stride
        return self.tokens[starts[:, None] + np.arange(self.context + 1)]  # (B, context + 1)


@dataclass
class RollSplit:
    """Windows of `context` steps of a split's concatenated piano roll, inside pieces."""

    roll: np.ndarray
    """(P, steps): the split's pieces one after another, each padded to `context` steps."""
    starts: np.ndarray
    context: int

    def __len__(self) -> int:
        return len(self.starts)

    def windows(self, index: np.ndarray) -> np.ndarray:
        cols = self.starts[index][:, None] + np.arange(self.context)  # (B, context)
        return np.ascontiguousarray(self.roll[:, cols].transpose(1, 0, 2))  # (B, P, context)


class SequenceDataset(Dataset):
    """Music. Batches: {"x": (B, context + 1) int64 tokens} (events) or
    {"x": (B, P, context) float32 piano rolls} (roll)."""

    pieces: dict[str, list[Piece]]

    def batch(self, split: str, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if split not in self.splits:
            raise UsageError(f"unknown split '{split}'; use one of: {', '.join(self.splits)}")
        part: EventSplit | RollSplit = self.splits[split]  # type: ignore[assignment]
        idx = torch.as_tensor(index, dtype=torch.long).cpu().numpy()
        x = part.windows(idx)
        dtype = np.int64 if isinstance(part, EventSplit) else np.float32
        return {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))}


def _info(
    *, source: str, shape: list[int], splits: dict[str, Any], fingerprint: str, record: Any
) -> DataInfo:
    """The data description of a loaded music data set (the one DataInfo call of this module)."""
    info = DataInfo(
        source=source,
        kind=SequenceKind.name,
        shape=shape,
        num_classes=0,
        task="none",
        n_train=len(splits["train"]),
        n_val=len(splits["val"]),
        n_test=len(splits["test"]),
        fingerprint=fingerprint,
        record=record,
    )
    return info


def _pieces(path: Path, source: str, split: SplitSettings, spq: int) -> dict[str, list[Piece]]:
    """The pieces of each split: a JSON file's own splits, else a seeded shuffle and cut."""
    if path.is_file() and path.suffix.lower() == ".json":
        data = read_json(path)
        if isinstance(data, dict):
            return data
        pieces = data
    else:
        if path.is_file() and path.suffix.lower() not in MIDI_SUFFIXES:
            raise DataError(
                f"'{source}' is neither a note-list .json nor a MIDI file; give one of them or "
                "a folder of MIDI files"
            )
        files = midi_files(path)
        if not files:
            raise DataError(f"found no .mid/.midi files in the folder '{source}'")
        pieces = [read_midi(f, spq) for f in files]
    if not pieces:
        raise DataError(f"'{source}' holds no pieces")
    idx = split_indices(
        len(pieces),
        val_fraction=split.val_fraction,
        test_fraction=split.test_fraction,
        seed=split.seed,
        what=source,
    )
    return {name: [pieces[i] for i in sorted(idx[name])] for name in SPLITS}


def read_sequence(
    path: Path, source: str, split: SplitSettings, cfg: SequenceConfig, *, context: int = 0
) -> SequenceDataset:
    """Read, split and encode music (see the module docstring)."""
    _check_config(cfg)
    if not path.exists():
        raise DataError(f"no music at '{source}': no such file or folder")
    if split.task in ("classification", "regression"):
        raise DataError(f"{source} is music without labels; data.task={split.task} cannot work")
    is_json = path.is_file() and path.suffix.lower() == ".json"
    spq = cfg.steps_per_quarter or (1 if is_json else 4)
    return sequence_dataset(_pieces(path, source, split, spq), source, cfg, spq, context)


def sequence_dataset(
    pieces: dict[str, list[Piece]], source: str, cfg: SequenceConfig, spq: int, context: int
) -> SequenceDataset:
    """The dataset of split note lists, encoded as `cfg` says (training pieces augmented)."""
    if not pieces["train"]:
        raise DataError(f"'{source}' has no training pieces")
    if cfg.pitches == "midi":
        low, high = 0, 127
    else:
        sounding = [p for ps in pieces.values() for piece in ps for s in piece for p in s]
        if not sounding:
            raise DataError(f"'{source}' holds only rests; give music with notes")
        low, high = min(sounding), max(sounding)
        low, high = max(0, low - cfg.transpose), min(127, high + cfg.transpose)
    context = context or DEFAULT_CONTEXT[cfg.encoding]
    record = SequenceRecord(
        encoding=cfg.encoding,
        low=low,
        high=high,
        vocab_size=high - low + 4,
        context=context,
        steps_per_quarter=spq,
        tempo_bpm=float(cfg.tempo_bpm),
        transpose=cfg.transpose,
    )
    key = [low, high, spq, cfg.encoding, context] + ([cfg.transpose] if cfg.transpose else [])
    digest = hashlib.sha256(json.dumps(key).encode())
    splits: dict[str, EventSplit | RollSplit] = {}
    for name in SPLITS:
        ps = pieces[name]
        if name == "train" and cfg.transpose:
            ps = transposed(ps, cfg.transpose, low, high)
        if cfg.encoding == "events":
            stream = np.concatenate(
                [piece_tokens(p, low, high) for p in ps] or [np.zeros(0, np.int64)]
            )
            if ps and len(stream) < context + 1:
                raise DataError(
                    f"the {name} split of '{source}' holds {len(stream)} tokens, fewer than one "
                    f"window of {context + 1}; use more music, a smaller model context, or "
                    "change data.val_fraction / data.test_fraction"
                )
            splits[name] = EventSplit(stream, context, 1 if name == "train" else context)
            digest.update(stream.tobytes())
        else:
            rolls = [piece_roll(p, low, high, max(len(p), context)) for p in ps]
            stride = 1 if name == "train" else context
            starts, at = [], 0
            for r in rolls:
                starts.extend(range(at, at + r.shape[1] - context + 1, stride))
                at += r.shape[1]
            roll = np.concatenate(rolls, axis=1) if rolls else np.zeros((high - low + 1, 0))
            splits[name] = RollSplit(roll.astype(np.float32), np.asarray(starts, np.int64), context)
            digest.update(np.packbits(roll.astype(bool)).tobytes())
    shape = [context] if cfg.encoding == "events" else [high - low + 1, context]
    info = _info(
        source=source, shape=shape, splits=splits, fingerprint=digest.hexdigest(), record=record
    )
    ds = SequenceDataset(info=info, splits=splits)  # type: ignore[arg-type]
    ds.pieces = pieces
    return ds


# the built-in Bach chorales ----------------------------------------------------------------------
BACH = "bach-chorales"
BACH_DESCRIPTION = (
    "the 371 four-part Bach chorales of music21's corpus (Riemenschneider numbering) as "
    "quarter-note note lists; needs pip install genlab[music]"
)


def cache_root() -> Path:
    """Where rendered built-in music is kept: $GENLAB_CACHE/music or ~/.cache/genlab/music."""
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")) / "music"


def score_piece(score: Any, steps_per_quarter: int) -> Piece:
    """A music21 score sampled on a grid: step k holds the pitches sounding at quarter note
    k / steps_per_quarter (notes that start and end between two grid points are left out)."""
    grid: list[set[int]] = [set() for _ in range(math.ceil(score.highestTime * steps_per_quarter))]
    for note in score.flatten().notes:
        t0 = float(note.offset) * steps_per_quarter
        t1 = t0 + float(note.quarterLength) * steps_per_quarter
        for k in range(math.ceil(t0 - 1e-6), min(math.ceil(t1 - 1e-6), len(grid))):
            grid[k].update(int(p.midi) for p in note.pitches)
    return [sorted(step) for step in grid]


def bach_chorales(steps_per_quarter: int = 1) -> list[Piece]:
    """The Bach chorales of music21's corpus as note lists, rendered once and cached."""
    try:
        import music21
        from music21 import corpus
    except ImportError:
        raise DataError(
            f"the built-in '{BACH}' needs music21, which is not installed; "
            "pip install genlab[music]"
        ) from None
    cached = cache_root() / f"{BACH}-music21-{music21.__version__}-spq{steps_per_quarter}.json"
    if cached.is_file():
        try:
            return [
                _canonical(p, f"'{cached}' piece {i}") for i, p in enumerate(read_cached(cached))
            ]
        except DataError:
            pass  # a damaged cache entry: render again
    names = corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename")
    pieces = [score_piece(corpus.parse(name), steps_per_quarter) for name in names]
    pieces = [p for p in pieces if any(p)]
    write_text_atomic(cached, json.dumps(pieces))
    return pieces


def read_cached(path: Path) -> list[Any]:
    """A cached JSON list (a DataError when unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable cache entry '{path}' ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"unreadable cache entry '{path}'")
    return data


# writing ---------------------------------------------------------------------------------------
def pianoroll_png(pieces: list[Piece], low: int, high: int) -> bytes:
    """A PNG of piano rolls, one band per piece (low pitches at the bottom of each), black
    notes on white, each step 8 pixels wide and each pitch 2 pixels tall."""
    from PIL import Image

    low = min([low, *(p for piece in pieces for s in piece for p in s)])
    high = max([high, *(p for piece in pieces for s in piece for p in s)])
    steps = max([1, *map(len, pieces)])
    bands = []
    for piece in pieces:
        roll = piece_roll(piece, low, high, steps)[::-1]  # (P, steps), highest pitch on top
        band = np.where(roll > 0, 0, 255).astype(np.uint8)
        band[np.arange(high, low - 1, -1) % 12 == 0] &= 235  # a faint line on each C
        bands += [band, np.full((2, steps), 128, np.uint8)]
    image = np.concatenate(bands[:-1]).repeat(2, axis=0).repeat(8, axis=1)
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def midi_bytes(piece: Piece, *, steps_per_quarter: int, tempo_bpm: float) -> bytes:
    """A type-0 MIDI file of a piece (piano; a held pitch is one note)."""
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_STEP * steps_per_quarter)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=0, time=0))
    events = []
    for pitch, t0, t1 in note_runs(piece):
        events.append((t0 * TICKS_PER_STEP, 1, pitch))
        events.append((t1 * TICKS_PER_STEP, 0, pitch))
    now = 0
    for tick, on, pitch in sorted(events):  # note-offs before note-ons at the same tick
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=80 if on else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=len(piece) * TICKS_PER_STEP - now))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def synthesize(piece: Piece, *, step_seconds: float, rate: int = SYNTH_RATE) -> np.ndarray:
    """A piece rendered as float32 audio in [-1, 1]: each held note a decaying sum of three
    sine harmonics with a short attack and release."""
    step_n = max(1, round(step_seconds * rate))
    attack, release = round(0.005 * rate), round(0.03 * rate)
    out = np.zeros(len(piece) * step_n + release, dtype=np.float64)
    for pitch, t0, t1 in note_runs(piece):
        f = 440.0 * 2.0 ** ((pitch - 69) / 12)
        held = (t1 - t0) * step_n
        t = np.arange(held + release) / rate
        tone = sum(
            a * np.sin(2 * np.pi * k * f * t)
            for k, a in ((1, 1.0), (2, 0.4), (3, 0.2))
            if k * f < rate / 2
        )
        env = np.exp(-1.5 * t)
        env[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
        env[held:] *= np.linspace(1.0, 0.0, release)
        out[t0 * step_n : t0 * step_n + held + release] += tone * env
    peak = np.abs(out).max()
    if peak > 0:
        out *= 0.8 / peak
    return out.astype(np.float32)


def _wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    from scipy.io import wavfile

    buf = io.BytesIO()
    wavfile.write(buf, rate, np.clip(np.round(wave * 32767.0), -32768, 32767).astype(np.int16))
    return buf.getvalue()


class SequenceKind(DataKind):
    """Polyphonic music as note lists, event tokens or piano rolls."""

    name: ClassVar[str] = "sequence"
    description: ClassVar[str] = (
        "a note-list .json (JSB Chorales format), a .mid/.midi file or a folder of them"
    )
    Config: ClassVar[type] = SequenceConfig
    Record: ClassVar[type] = SequenceRecord
    tokens: ClassVar[bool] = True  # with data.sequence.encoding=events
    suffixes: ClassVar[tuple[str, ...]] = (".mid", ".midi", ".json", ".wav", ".npy")
    builtins: ClassVar[dict[str, str]] = {BACH: BACH_DESCRIPTION}
    default_samples: ClassVar[int] = 4
    preview: ClassVar[tuple[int, str] | None] = (4, ".mid")

    def claims(self, path: Path) -> bool:
        if path.is_dir():
            return any(p.suffix.lower() in MIDI_SUFFIXES and p.is_file() for p in path.rglob("*"))
        return path.suffix.lower() in (*MIDI_SUFFIXES, ".json")

    def read(
        self,
        path: Path,
        source: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> SequenceDataset:
        """Read music; `context`: tokens (events) or steps (roll) per example (0: default)."""
        return read_sequence(Path(path), source, split, cfg, context=context)

    def read_builtin(
        self,
        name: str,
        split: SplitSettings,
        cfg: Any,
        *,
        context: int = 0,
        run_dir: Path | None = None,
    ) -> SequenceDataset:
        """The Bach chorales of music21's corpus, split by `data.seed` and the fractions."""
        if name != BACH:
            raise DataError(f"no built-in music '{name}'; built-ins are: {BACH}")
        _check_config(cfg)
        spq = cfg.steps_per_quarter or 1
        pieces = bach_chorales(spq)
        idx = split_indices(
            len(pieces),
            val_fraction=split.val_fraction,
            test_fraction=split.test_fraction,
            seed=split.seed,
            what=name,
        )
        parts = {part: [pieces[i] for i in sorted(idx[part])] for part in SPLITS}
        return sequence_dataset(parts, name, cfg, spq, context)

    # sampling and scoring ----------------------------------------------------------------------
    def start_tokens(self, info: Any) -> list[int]:
        """A piece starts with BOS: sampling without a prompt conditions on it."""
        rec = info.record
        bos = specials(rec.low, rec.high)[1]
        return [bos] if bos < rec.vocab_size else []  # a record without the specials: none

    def prompt_tokens(self, path: Path, info: Any) -> list[int]:
        """BOS and the steps of a MIDI file (or the first piece of a note-list .json), quantised
        to the run's grid: an opening that samples continue."""
        rec = info.record
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"no prompt file '{path}'; give a MIDI file")
        if path.suffix.lower() == ".json":
            data = read_json(path)
            pieces = data if isinstance(data, list) else next(iter(data.values()))
            if not pieces:
                raise DataError(f"'{path}' holds no pieces")
            piece = pieces[0]
        elif path.suffix.lower() in MIDI_SUFFIXES:
            piece = read_midi(path, rec.steps_per_quarter)
        else:
            raise UsageError(f"the prompt '{path}' is not a .mid/.midi file (or a note-list .json)")
        for step in piece:
            for p in step:
                if not rec.low <= p <= rec.high:
                    raise DataError(
                        f"the prompt '{path}' holds pitch {p}, outside the {rec.low}..{rec.high} "
                        "this model was trained on; transpose the opening into that range"
                    )
        return [int(t) for t in piece_tokens(piece, rec.low, rec.high)[:-1]]  # no EOS

    def scored_sequences(self, data: Any, split: str) -> tuple[str, list[Any]] | None:
        """Per piece of the split: its tokens, the predicted tokens that count (each step's
        pitches and its STEP; not BOS or EOS) and its number of steps."""
        rec = data.info.record
        if rec.encoding != "events" or not getattr(data, "pieces", None):
            return None
        _, bos, eos = specials(rec.low, rec.high)
        out = []
        for piece in data.pieces[split]:
            ids = piece_tokens(piece, rec.low, rec.high)
            target = ids[1:]
            out.append((ids, (target != bos) & (target != eos), len(piece)))
        return "step", out

    def notes(self, info: Any) -> list[str]:
        n = getattr(info.record, "transpose", 0)
        if not n:
            return []
        return [
            f"data: training pieces augmented by every transposition of -{n}..{n} semitones "
            "(data.sequence.transpose); validation and test pieces untransposed"
        ]

    # codec -------------------------------------------------------------------------------------
    def encode(self, data: Any, info: Any) -> torch.Tensor:
        """A list of pieces -> (N, L) int64 tokens padded with EOS (events), or (N, P, T)
        float32 piano rolls padded with rests (roll)."""
        rec = info.record
        if not isinstance(data, list) or not all(isinstance(p, list) for p in data):
            raise UsageError("music to encode must be a list of pieces (lists of time steps)")
        pieces = [_canonical(p, f"piece {i}") for i, p in enumerate(data)]
        if rec.encoding == "events":
            seqs = [piece_tokens(p, rec.low, rec.high) for p in pieces]
            out = np.full((len(seqs), max(map(len, seqs), default=0)), rec.vocab_size - 1)
            for i, s in enumerate(seqs):
                out[i, : len(s)] = s
            return torch.from_numpy(out.astype(np.int64))
        steps = max(map(len, pieces), default=0)
        return torch.from_numpy(np.stack([piece_roll(p, rec.low, rec.high, steps) for p in pieces]))

    def decode(self, x: Any, info: Any) -> list[Piece]:
        """Samples in either form -> a list of pieces: integer tokens (N, L) or (L,), or float
        piano rolls (N, P, T) or (P, T)."""
        rec = info.record
        if isinstance(x, list | tuple) and x and not isinstance(x[0], int | float):
            return [p for row in x for p in self.decode(row, info)]
        t = torch.as_tensor(x).detach().cpu()
        if t.is_floating_point():
            rolls = t.numpy()
            if rolls.ndim == 2:
                rolls = rolls[None]
            if rolls.ndim != 3 or rolls.shape[1] != rec.high - rec.low + 1:
                raise UsageError(
                    f"piano rolls must be (N, {rec.high - rec.low + 1}, steps); "
                    f"got {tuple(t.shape)}"
                )
            return [roll_piece(r, rec.low) for r in rolls]
        ids = t.numpy()
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2:
            raise UsageError(f"music tokens must be (N, L) or (L,); got {tuple(t.shape)}")
        return [tokens_piece(row, rec.low, rec.high) for row in ids]

    # writing -----------------------------------------------------------------------------------
    def write_each(
        self, samples: Any, folder: Path, info: Any, *, stem: str = "sample", **options: Any
    ) -> list[Path]:
        """`write` already writes one file per sample: STEM-000.mid, ..., into `folder`."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        return self.write(samples, Path(folder) / f"{stem}.mid", info, **options)

    def write(
        self,
        samples: Any,
        path: Path,
        info: Any,
        *,
        tempo_bpm: float = 0.0,
        pianoroll: bool = True,
        **options: Any,
    ) -> list[Path]:
        """Write samples as `stem-000.mid`, ... (or .wav, one per piece) with `stem-pianoroll.png`
        beside them (unless `pianoroll=False`), one .json list of pieces, or one .npy of uint8
        piano rolls (N, 128, steps). `tempo_bpm`: 0 = the data's."""
        if options:
            raise UsageError(f"unknown music output options: {', '.join(sorted(options))}")
        path = Path(path)
        self.check_suffix(path)
        rec = info.record
        tempo = float(tempo_bpm or rec.tempo_bpm)
        if not math.isfinite(tempo) or tempo <= 0:
            raise UsageError(f"the tempo must be positive, got {tempo}")
        pieces = self.decode(samples, info)
        suffix = path.suffix.lower()
        if suffix == ".json":
            write_text_atomic(path, json.dumps(pieces))
            return [path]
        if suffix == ".npy":
            steps = max(map(len, pieces), default=0)
            rolls = np.stack([piece_roll(p, 0, 127, steps) for p in pieces]).astype(np.uint8)
            buf = io.BytesIO()
            np.save(buf, rolls)
            write_bytes_atomic(path, buf.getvalue())
            return [path]
        written = []
        for i, piece in enumerate(pieces):
            out = path.parent / f"{path.stem}-{i:03d}{suffix}"
            if suffix == ".wav":
                step_seconds = 60.0 / tempo / rec.steps_per_quarter
                data = _wav_bytes(synthesize(piece, step_seconds=step_seconds), SYNTH_RATE)
            else:
                data = midi_bytes(piece, steps_per_quarter=rec.steps_per_quarter, tempo_bpm=tempo)
            write_bytes_atomic(out, data)
            written.append(out)
        if pianoroll and pieces:
            out = path.parent / f"{path.stem}-pianoroll.png"
            write_bytes_atomic(out, pianoroll_png(pieces, rec.low, rec.high))
            written.append(out)
        return written


KIND = SequenceKind()
