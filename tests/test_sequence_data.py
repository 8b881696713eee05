"""The music data kind: note lists and MIDI in, event tokens and piano rolls, writers, errors.

Synthetic pieces are made with a seeded generator; the JSB Chorales in
../shared/data/jsb_chorales (or $GENLAB_SHARED_DATA/jsb_chorales) are read when present.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import mido
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from genlab.data.kind import SplitSettings
from genlab.data.sequence import (
    KIND,
    SequenceConfig,
    note_runs,
    piece_roll,
    piece_tokens,
    roll_piece,
    tokens_piece,
)
from genlab.errors import DataError, UsageError

SHARED = Path(
    os.environ.get("GENLAB_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
JSB = SHARED / "jsb_chorales" / "jsb-chorales-quarter.json"
NO_SPLIT = SplitSettings(val_fraction=0.0, test_fraction=0.0)


def pieces(n: int, seed: int) -> list[list[list[int]]]:
    """n random pieces of 8..20 steps, 0..4 distinct pitches in 50..70 per step (rests too)."""
    rng = random.Random(seed)
    return [
        [sorted(rng.sample(range(50, 71), rng.randint(0, 4))) for _ in range(rng.randint(8, 20))]
        for _ in range(n)
    ]


@pytest.fixture
def jsb_like(tmp_path: Path) -> Path:
    path = tmp_path / "chorales.json"
    data = {"train": pieces(6, 0), "valid": pieces(2, 1), "test": pieces(2, 2)}
    path.write_text(json.dumps(data))
    return path


def test_event_tokens_of_a_small_piece_by_hand() -> None:
    # pitches 60..64 are ids 0..4; STEP 5, BOS 6, EOS 7
    piece = [[64, 60], [], [62]]
    assert piece_tokens(piece, 60, 64).tolist() == [6, 0, 4, 5, 5, 2, 5, 7]
    assert tokens_piece([6, 0, 4, 5, 5, 2, 5, 7], 60, 64) == [[60, 64], [], [62]]
    # no BOS, pitches left open at the end, EOS padding and what follows it are ignored
    assert tokens_piece([4, 0, 5, 2], 60, 64) == [[60, 64], [62]]
    assert tokens_piece([1, 5, 7, 3, 5, 7, 7], 60, 64) == [[61]]
    with pytest.raises(UsageError, match="outside the vocabulary 0..7"):
        tokens_piece([8], 60, 64)


def test_event_round_trip_is_exact_on_synthetic_pieces() -> None:
    for piece in pieces(50, 3):
        assert tokens_piece(piece_tokens(piece, 50, 70), 50, 70) == piece
        assert roll_piece(piece_roll(piece, 50, 70), 50) == piece


def test_note_runs_join_held_pitches() -> None:
    assert note_runs([[60, 64], [60], [], [60]]) == [(60, 0, 2), (64, 0, 1), (60, 3, 4)]


def test_reads_a_json_file_with_its_own_splits(jsb_like: Path) -> None:
    raw = json.loads(jsb_like.read_text())
    ds = KIND.read(jsb_like, "jsb", SplitSettings(), SequenceConfig(), context=16)
    rec = ds.info.record
    assert ds.info.kind == "sequence" and ds.info.task == "none"
    assert (rec.low, rec.high) == (50, 70) and rec.vocab_size == 21 + 3
    assert ds.info.record.vocab_size == 24 and ds.info.shape == [16] and rec.steps_per_quarter == 1
    assert ds.pieces["train"] == raw["train"] and ds.pieces["val"] == raw["valid"]
    # a split's token stream: per piece BOS + its notes + a STEP per step + EOS
    for name, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        n = sum(2 + len(p) + sum(map(len, p)) for p in raw[key])
        assert len(ds.splits[name].tokens) == n
        stride = 1 if name == "train" else 16
        assert len(ds.splits[name]) == (n - 17) // stride + 1
    x = ds.batch("val", torch.arange(2))["x"]
    assert x.dtype == torch.int64 and x.shape == (2, 17)
    assert torch.equal(x[1, :1], x[0, 16:17])  # validation windows tile the stream
    assert int(x[0, 0]) == 22  # the first piece begins with BOS


def test_roll_encoding_windows(jsb_like: Path) -> None:
    cfg = SequenceConfig(encoding="roll")
    ds = KIND.read(jsb_like, "jsb", SplitSettings(), cfg, context=8)
    raw = json.loads(jsb_like.read_text())
    assert ds.info.shape == [21, 8] and ds.info.record.encoding == "roll"
    assert len(ds.splits["train"]) == sum(len(p) - 8 + 1 for p in raw["train"])
    assert len(ds.splits["test"]) == sum((len(p) - 8) // 8 + 1 for p in raw["test"])
    x = ds.batch("train", torch.tensor([0]))["x"]
    assert x.dtype == torch.float32 and x.shape == (1, 21, 8)
    assert KIND.decode(x, ds.info)[0] == raw["train"][0][:8]


def test_codec_encode_decode(jsb_like: Path) -> None:
    ds = KIND.read(jsb_like, "jsb", SplitSettings(), SequenceConfig(), context=16)
    music = pieces(5, 4)
    x = KIND.encode(music, ds.info)
    assert x.dtype == torch.int64 and x.shape[0] == 5
    assert KIND.decode(x, ds.info) == music
    assert KIND.decode(list(x), ds.info) == music  # a list of token rows
    roll = SequenceConfig(encoding="roll")
    info = KIND.read(jsb_like, "jsb", SplitSettings(), roll, context=8).info
    r = KIND.encode(music, info)
    assert r.shape == (5, 21, max(map(len, music)))
    assert [p[: len(m)] for p, m in zip(KIND.decode(r, info), music, strict=True)] == music
    with pytest.raises(DataError, match="outside the vocabulary's range 50..70"):
        KIND.encode([[[49]]], ds.info)


def write_midi(path: Path, notes: list[tuple[int, int, int, int]], tpb: int = 480) -> Path:
    """A MIDI file of (channel, pitch, start tick, end tick) notes; note-offs as velocity 0."""
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    events = []
    for ch, p, t0, t1 in notes:
        events += [(t0, 1, ch, p), (t1, 0, ch, p)]
    now = 0
    for tick, on, ch, p in sorted(events):
        track.append(mido.Message("note_on", channel=ch, note=p, velocity=90 * on, time=tick - now))
        now = tick
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    return path


def test_midi_is_quantised_to_the_grid(tmp_path: Path) -> None:
    # C4 for a quarter (starting slightly early), E4 from the 2nd 16th for an 8th, a drum hit
    notes = [(0, 60, 0, 470), (0, 64, 125, 360), (9, 36, 0, 100)]
    path = write_midi(tmp_path / "a.mid", notes)
    ds = KIND.read(path, "a", NO_SPLIT, SequenceConfig(), context=4)
    assert ds.info.record.steps_per_quarter == 4
    assert ds.pieces["train"] == [[[60], [60, 64], [60, 64], [60]]]
    ds = KIND.read(path, "a", NO_SPLIT, SequenceConfig(steps_per_quarter=2), context=1)
    assert ds.pieces["train"] == [[[60], [60, 64]]]


def test_written_midi_reads_back_with_mido(tmp_path: Path, jsb_like: Path) -> None:
    cfg = SequenceConfig(steps_per_quarter=2, tempo_bpm=90)
    ds = KIND.read(jsb_like, "jsb", SplitSettings(), cfg, context=16)
    music = pieces(3, 5)
    files = KIND.write(KIND.encode(music, ds.info), tmp_path / "out" / "song.mid", ds.info)
    names = ["song-000.mid", "song-001.mid", "song-002.mid", "song-pianoroll.png"]
    assert [f.name for f in files] == names
    files = files[:3]
    for f, piece in zip(files, music, strict=True):
        mid = mido.MidiFile(f)
        tick, found, opened, tempo = 0, [], {}, None
        for msg in mido.merge_tracks(mid.tracks):
            tick += msg.time
            if msg.type == "set_tempo":
                tempo = msg.tempo
            elif msg.type == "note_on":
                opened[msg.note] = tick
            elif msg.type == "note_off":
                found.append((msg.note, opened.pop(msg.note), tick))
        step = mid.ticks_per_beat // 2
        assert tempo == mido.bpm2tempo(90) and not opened
        assert sorted(found) == sorted((p, a * step, b * step) for p, a, b in note_runs(piece))
        assert tick == len(piece) * step  # the end of track keeps trailing rests
        back = KIND.read(f, "m", NO_SPLIT, SequenceConfig(steps_per_quarter=2), context=4)
        assert back.pieces["train"] == [piece]


def test_writes_json_npy_and_wav(tmp_path: Path, jsb_like: Path) -> None:
    ds = KIND.read(jsb_like, "jsb", SplitSettings(), SequenceConfig(tempo_bpm=120), context=16)
    music = pieces(3, 6)
    x = KIND.encode(music, ds.info)
    (f,) = KIND.write(x, tmp_path / "s.json", ds.info)
    assert json.loads(f.read_text()) == music
    back = KIND.read(f, "s", SplitSettings(0.34, 0.0), SequenceConfig(), context=8)
    assert sorted(back.pieces["train"] + back.pieces["val"]) == sorted(music)
    (f,) = KIND.write(x, tmp_path / "s.npy", ds.info)
    rolls = np.load(f)
    assert rolls.dtype == np.uint8 and rolls.shape == (3, 128, max(map(len, music)))
    assert roll_piece(rolls[0][:, : len(music[0])], 0) == music[0]

    # one held A4 for 4 quarter steps at 120 bpm: 2 s of a 440 Hz tone (+ 30 ms release)
    a4 = torch.tensor([[22, 69 - 50, 21, 19, 21, 19, 21, 19, 21, 23]])
    assert KIND.decode(a4, ds.info) == [[[69], [69], [69], [69]]]
    (f,) = KIND.write(a4, tmp_path / "a.wav", ds.info, pianoroll=False)
    rate, data = wavfile.read(f)
    assert rate == 16000 and data.dtype == np.int16 and len(data) == 32000 + 480
    assert np.abs(data).max() == round(0.8 * 32767)
    spectrum = np.abs(np.fft.rfft(data[:32000].astype(float)))
    assert np.fft.rfftfreq(32000, 1 / 16000)[spectrum.argmax()] == 440.0
    files = KIND.write(a4, tmp_path / "a.wav", ds.info, tempo_bpm=60)
    assert len(wavfile.read(files[0])[1]) == 64000 + 480
    with pytest.raises(UsageError, match="--out a.png"):
        KIND.write(a4, tmp_path / "a.png", ds.info)


@pytest.mark.skipif(not JSB.is_file(), reason=f"the JSB Chorales are not at {JSB}")
def test_real_chorales_round_trip_exactly() -> None:
    raw = json.loads(JSB.read_text())
    ds = KIND.read(JSB, str(JSB), SplitSettings(), SequenceConfig())
    rec = ds.info.record
    assert [len(ds.pieces[s]) for s in ("train", "val", "test")] == [229, 76, 77]
    assert (rec.low, rec.high, rec.vocab_size, rec.context) == (43, 96, 57, 256)
    for key in ("train", "valid", "test"):
        assert KIND.decode(KIND.encode(raw[key], ds.info), ds.info) == raw[key]
    test_steps = sum(len(p) for p in raw["test"])
    assert test_steps == 4725
    notes = sum(len(s) for p in raw["test"] for s in p)
    assert len(ds.splits["test"].tokens) == notes + test_steps + 2 * 77


def test_bad_input_is_a_one_line_data_error(tmp_path: Path) -> None:
    cases = {
        "bad.json": ("{not json", "is not readable JSON"),
        "keys.json": (json.dumps({"train": [], "dev": []}), "keys dev, train"),
        "high.json": (json.dumps([[[60, 130]]]), "piece 0, step 0 holds pitch 130"),
        "neg.json": (json.dumps([[[60], [-1]]]), "step 1 holds pitch -1"),
        "name.json": (json.dumps([[["C4"]]]), "holds 'C4', not a MIDI pitch"),
        "flat.json": (json.dumps([[60, 62]]), "step 0 is not a list"),
        "bad.mid": (b"MThd\x00\x00\x00\x06\x00", "is not a readable MIDI file"),
        "notes.txt": ("hello", "neither a note-list .json nor a MIDI file"),
    }
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(DataError) as exc:
            KIND.read(path, str(path), NO_SPLIT, SequenceConfig(), context=2)
        assert needle in str(exc.value) and str(path) in str(exc.value), name
        assert "\n" not in str(exc.value)
    silent = tmp_path / "silent.mid"
    mido.MidiFile().save(silent)
    with pytest.raises(DataError, match="holds no notes"):
        KIND.read(silent, str(silent), NO_SPLIT, SequenceConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="found no .mid/.midi files"):
        KIND.read(tmp_path / "empty", "empty", NO_SPLIT, SequenceConfig())
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"train": pieces(4, 0), "valid": [[[60]]], "test": pieces(1, 1)}))
    with pytest.raises(DataError, match="the val split .* holds 4 tokens, fewer than one window"):
        KIND.read(short, "short", SplitSettings(), SequenceConfig(), context=16)
    with pytest.raises(DataError, match="data.task=classification cannot work"):
        KIND.read(short, "short", SplitSettings(task="classification"), SequenceConfig())


@pytest.mark.parametrize(
    "cfg, needle",
    [
        (SequenceConfig(steps_per_quarter=-1), "steps_per_quarter"),
        (SequenceConfig(tempo_bpm=0), "tempo_bpm"),
        (SequenceConfig(pitches="piano"), "data.sequence.pitches"),
        (SequenceConfig(encoding="notes"), "data.sequence.encoding"),
    ],
)
def test_bad_settings_are_usage_errors(jsb_like: Path, cfg: SequenceConfig, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        KIND.read(jsb_like, "jsb", SplitSettings(), cfg)


def test_midi_pitch_range_and_claims(jsb_like: Path) -> None:
    ds = KIND.read(jsb_like, "jsb", SplitSettings(), SequenceConfig(pitches="midi"), context=16)
    assert (ds.info.record.low, ds.info.record.high, ds.info.record.vocab_size) == (0, 127, 131)
    assert KIND.claims(Path("a.MID")) and KIND.claims(jsb_like) and not KIND.claims(Path("a.wav"))


def test_a_midi_folder_is_split_by_the_seed(tmp_path: Path) -> None:
    for i in range(5):
        write_midi(tmp_path / "set" / f"sub{i % 2}" / f"p{i}.mid", [(0, 60 + i, 0, 480 * (i + 4))])
    split = SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=3)
    ds = KIND.read(tmp_path / "set", "set", split, SequenceConfig(), context=4)
    got = {name: [p[0][0] for p in ds.pieces[name]] for name in ("train", "val", "test")}
    assert sorted(sum(got.values(), [])) == [60, 61, 62, 63, 64]
    assert [len(v) for v in got.values()] == [3, 1, 1]
    assert [len(p) for p in ds.pieces["train"]] == [
        4 * (p[0][0] - 60 + 4) for p in ds.pieces["train"]
    ]
    again = KIND.read(tmp_path / "set", "set", split, SequenceConfig(), context=4)
    assert again.info.fingerprint == ds.info.fingerprint
