"""Music end to end: per-step NLL, transposition, prompts, MIDI/WAV output, the built-in chorales.

Toy songs are written into a temporary folder; music21's corpus is read only when music21 is
installed (the `music` extra).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from genlab.data.kind import SplitSettings
from genlab.data.sequence import (
    KIND,
    SYNTH_RATE,
    SequenceConfig,
    bach_chorales,
    piece_tokens,
    score_piece,
    synthesize,
)
from genlab.errors import DataError, UsageError
from genlab.metrics.evaluate import per_piece_unit
from genlab.models.gpt import GPT
from genlab.models.gpt import Config as GPTConfig
from genlab.sequence.model import SequenceModel

ROOT = Path(__file__).resolve().parents[1]
SONG = [[60, 64], [62]]
"""The two-step toy song: C and E together, then D."""


def write_json(path: Path, splits: dict) -> Path:
    path.write_text(json.dumps(splits))
    return path


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A note-list file whose test split is the two-step song (pitches 60..64)."""
    train = [[[60, 62], [64], [60, 64], [62]]] * 3
    return write_json(tmp_path / "toy.json", {"train": train, "valid": train, "test": [SONG]})


@dataclass
class TinyConfig:
    context: int = 4


class Bigram(SequenceModel):
    """Next-token logits that depend only on the previous token: a fixed table."""

    family = "bigram"

    def __init__(self, info, table: torch.Tensor) -> None:
        super().__init__(TinyConfig(), info)
        self.table = torch.nn.Parameter(table)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids]  # (B, T, V)


def test_nll_per_step_of_a_two_step_song_equals_a_hand_computation(toy: Path) -> None:
    ds = KIND.read(toy, "toy", SplitSettings(), SequenceConfig(), context=4)
    rec = ds.info.record
    assert (rec.low, rec.high, rec.vocab_size) == (60, 64, 8)  # STEP 5, BOS 6, EOS 7
    assert piece_tokens(SONG, 60, 64).tolist() == [6, 0, 4, 5, 2, 5, 7]
    table = torch.zeros(8, 8)  # uniform: every token 1/8 ...
    table[6, 0] = math.log(7)  # ... except pitch 60 after BOS: 7 / (7 + 7) = 1/2
    unit = per_piece_unit(Bigram(ds.info, table), ds, "test")
    # scored: 60 | BOS (1/2), 64 | 60, STEP | 64, 62 | STEP, STEP | 62 (1/8 each); EOS is not
    hand = (math.log(2) + 4 * math.log(8)) / 2
    assert unit == {"steps_scored": 2, "nll_nats_per_step": pytest.approx(hand, abs=1e-6)}


def test_long_pieces_are_scored_in_half_overlapping_windows() -> None:
    from genlab.data import DataInfo
    from genlab.data.sequence import SequenceRecord

    info = DataInfo(
        source="t", kind="sequence", shape=[4], record=SequenceRecord(low=60, high=64, vocab_size=8)
    )
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=4), info).eval()
    ids = torch.randint(0, 8, (11,))
    got = model.sequence_nll(ids)
    # target t is read from the window its score comes from: 1..4 from ids[0:4], then windows
    # of 4 tokens ending 2 further on each time
    starts = {1: 0, 2: 0, 3: 0, 4: 0, 5: 2, 6: 2, 7: 4, 8: 4, 9: 6, 10: 6}
    with torch.no_grad():
        want = [
            -torch.log_softmax(model.logits(ids[None, s:t])[0, -1], -1)[ids[t]]
            for t, s in starts.items()
        ]
    torch.testing.assert_close(got, torch.stack(want))


def test_transposition_augments_training_pieces_only(toy: Path) -> None:
    plain = KIND.read(toy, "toy", SplitSettings(), SequenceConfig(), context=4)
    aug = KIND.read(toy, "toy", SplitSettings(), SequenceConfig(transpose=2), context=4)
    assert (aug.info.record.low, aug.info.record.high) == (58, 66)  # widened by 2 each side
    assert aug.info.record.transpose == 2
    # every training piece in 5 keys: the token stream is 5 times as long
    assert len(aug.splits["train"].tokens) == 5 * len(plain.splits["train"].tokens)
    assert len(aug.splits["test"].tokens) == len(plain.splits["test"].tokens)
    assert aug.pieces == plain.pieces  # the note lists as read
    assert aug.info.fingerprint != plain.info.fingerprint
    assert "-2..2 semitones" in KIND.notes(aug.info)[0] and KIND.notes(plain.info) == []
    with pytest.raises(UsageError, match="transpose"):
        KIND.read(toy, "toy", SplitSettings(), SequenceConfig(transpose=-1))


def write_midi(path: Path, piece: list[list[int]], spq: int = 1) -> Path:
    from genlab.data.sequence import midi_bytes

    path.write_bytes(midi_bytes(piece, steps_per_quarter=spq, tempo_bpm=100))
    return path


def test_start_and_prompt_tokens(toy: Path, tmp_path: Path) -> None:
    ds = KIND.read(toy, "toy", SplitSettings(), SequenceConfig(), context=4)
    assert KIND.start_tokens(ds.info) == [6]  # BOS
    midi = write_midi(tmp_path / "opening.mid", [[60, 64], [], [62]])
    assert KIND.prompt_tokens(midi, ds.info) == [6, 0, 4, 5, 5, 2, 5]  # no EOS
    with pytest.raises(DataError, match="pitch 70, outside the 60..64"):
        KIND.prompt_tokens(write_midi(tmp_path / "high.mid", [[70]]), ds.info)
    (tmp_path / "opening.txt").write_text("C E D")
    with pytest.raises(UsageError, match="not a .mid"):
        KIND.prompt_tokens(tmp_path / "opening.txt", ds.info)
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(DataError, match="not a readable MIDI file"):
        KIND.prompt_tokens(bad, ds.info)


def test_wav_renders_each_pitch_at_its_frequency(tmp_path: Path, toy: Path) -> None:
    from scipy.io import wavfile

    wave = synthesize([[69]] * 4, step_seconds=0.25)  # A4 for one second
    assert len(wave) == SYNTH_RATE + round(0.03 * SYNTH_RATE)  # plus the release
    spectrum = np.abs(np.fft.rfft(wave[:SYNTH_RATE]))
    assert np.argmax(spectrum) == 440  # 1 Hz bins over one second
    ds = KIND.read(toy, "toy", SplitSettings(), SequenceConfig(tempo_bpm=60), context=4)
    files = KIND.write(KIND.encode([SONG], ds.info), tmp_path / "song.wav", ds.info)
    assert [f.name for f in files] == ["song-000.wav", "song-pianoroll.png"]
    rate, data = wavfile.read(files[0])
    assert rate == SYNTH_RATE and data.dtype == np.int16
    assert len(data) == 2 * SYNTH_RATE + round(0.03 * SYNTH_RATE)  # two 1-second steps
    assert abs(int(np.abs(data.astype(np.int32)).max()) - round(0.8 * 32767)) <= 1  # peak 0.8


def test_midi_round_trip_through_the_writer_and_reader(tmp_path: Path, toy: Path) -> None:
    ds = KIND.read(toy, "toy", SplitSettings(), SequenceConfig(), context=4)
    song = [[60, 64], [60, 64], [], [62], [61, 63]]
    files = KIND.write(KIND.encode([song], ds.info), tmp_path / "s.mid", ds.info)
    assert mido.MidiFile(files[0]).length == pytest.approx(5 * 60 / 100)
    assert KIND.prompt_tokens(files[0], ds.info) == piece_tokens(song, 60, 64).tolist()[:-1]
    from PIL import Image

    assert Image.open(files[1]).size == (5 * 8, 5 * 2)  # 5 steps x 5 pitches


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "not readable JSON"),
        ("[]", "holds no pieces"),
        ("{}", "has the keys"),
        ('{"train": [], "valid": [], "test": []}', "no training pieces"),
    ],
)
def test_empty_json_is_a_one_line_error(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "empty.json"
    path.write_text(content)
    with pytest.raises(DataError, match=needle) as err:
        KIND.read(path, "empty", SplitSettings(), SequenceConfig())
    assert "\n" not in str(err.value)


class FakeNote:
    def __init__(self, offset: float, length: float, *midi: int) -> None:
        self.offset, self.quarterLength = offset, length
        self.pitches = [type("P", (), {"midi": m})() for m in midi]


class FakeScore:
    highestTime = 4.0

    def flatten(self):
        notes = [
            FakeNote(0, 2, 67),
            FakeNote(0, 1, 48, 55),  # a chord
            FakeNote(1, 0.5, 50),  # on the grid at 1, gone by 2
            FakeNote(1.5, 0.5, 52),  # between grid points: left out
            FakeNote(2, 2, 60),
        ]
        return type("Flat", (), {"notes": notes})()


def test_scores_are_sampled_on_the_grid() -> None:
    assert score_piece(FakeScore(), 1) == [[48, 55, 67], [50, 67], [60], [60]]
    assert len(score_piece(FakeScore(), 2)) == 8


def test_bach_chorales_without_music21_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "music21", None)  # import music21 -> ImportError
    with pytest.raises(DataError, match=r"pip install genlab\[music\]") as err:
        bach_chorales()
    assert "\n" not in str(err.value)


def test_a_bach_chorale_from_music21s_corpus() -> None:
    music21 = pytest.importorskip("music21", reason="music21 (the `music` extra) is absent")
    piece = score_piece(music21.corpus.parse("bach/bwv269"), 1)
    assert len(piece) == 63
    assert sum(len(step) == 4 for step in piece) > 0.9 * len(piece)  # four voices


def test_cli_trains_scores_and_writes_music(tmp_path: Path, capsys, monkeypatch) -> None:
    from genlab.cli import main

    monkeypatch.chdir(tmp_path)
    train = [[[60, 62], [64], [60, 64], [62]]] * 3
    write_json(tmp_path / "toy.json", {"train": train, "valid": train, "test": [SONG] * 3})
    tiny = ["--set", "model.n_layer=1", "--set", "model.n_embd=16", "--set", "model.n_head=1"]
    tiny += ["--set", "model.block_size=8", "--set", "train.batch_size=4"]
    assert main(["train", "gpt", "--data", "toy.json", "--out", "run", "--steps", "3", *tiny]) == 0
    assert len(list((tmp_path / "run" / "samples").glob("step-0000003-*.mid"))) == 4
    capsys.readouterr()
    assert main(["eval", "run"]) == 0
    assert "nll_nats_per_step" in capsys.readouterr().out
    assert main(["sample", "run", "--help"]) == 0
    assert "(default 4, each its own .mid file)" in " ".join(capsys.readouterr().out.split())
    assert main(["sample", "run", "--out", "c.wav"]) == 0  # -n: 4 by default for music
    wavs = [f"c-{i:03d}.wav" for i in range(4)]
    assert sorted(p.name for p in tmp_path.glob("c-*")) == [*wavs, "c-pianoroll.png"]
    write_midi(tmp_path / "open.mid", [[60, 64], [62], [64]])
    assert main(["sample", "run", "-n", "1", "--prompt-midi", "open.mid", "--out", "p.mid"]) == 0
    info = KIND.read(tmp_path / "toy.json", "toy", SplitSettings(), SequenceConfig(), context=8)
    opening = KIND.prompt_tokens(tmp_path / "open.mid", info.info)
    got = KIND.prompt_tokens(tmp_path / "p-000.mid", info.info)
    assert got[: len(opening)] == opening  # the output starts with the opening
    (tmp_path / "broken.mid").write_bytes(b"not midi")
    capsys.readouterr()
    assert main(["sample", "run", "--prompt-midi", "broken.mid"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.mid" in err[0] and "Traceback" not in err[0]
