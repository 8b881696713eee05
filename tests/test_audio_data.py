"""The audio data kind: WAV reading, labels, resampling, the mu-law codec, writers, bad input.

Tiny sine-wave WAVs are written in tmp for every test; the Free Spoken Digit Dataset in
../shared/data/fsdd/recordings (or $GENLAB_SHARED_DATA/fsdd/recordings) is read when present.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from genlab.data.audio import KIND, AudioConfig, mulaw_decode, mulaw_encode
from genlab.data.kind import SplitSettings
from genlab.errors import DataError, UsageError

SHARED = Path(
    os.environ.get("GENLAB_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
FSDD = SHARED / "fsdd" / "recordings"
FREQ = {"3": 440.0, "7": 880.0}  # one sine frequency per class
SPLIT = SplitSettings(val_fraction=0.25, test_fraction=0.25, seed=0)


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def write_wav(path: Path, wave: np.ndarray, rate: int = 8000, dtype=np.int16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if dtype == np.int16:
        data = np.round(wave * 32767).astype(np.int16)
    elif dtype == np.uint8:
        data = np.clip(np.round(wave * 128) + 128, 0, 255).astype(np.uint8)
    else:
        data = wave.astype(dtype)
    wavfile.write(path, rate, data)
    return path


@pytest.fixture
def fsdd_like(tmp_path: Path) -> Path:
    """12 clips `{digit}_{speaker}_{index}.wav` at 8 kHz: digit 3 is 440 Hz, 7 is 880 Hz;
    clip lengths 0.10 s .. 0.14 s."""
    root = tmp_path / "recordings"
    for d, freq in FREQ.items():
        for s, speaker in enumerate(("ann", "bob")):
            for i in range(3):
                seconds = 0.10 + 0.01 * (i + 2 * s)
                write_wav(root / f"{d}_{speaker}_{i}.wav", sine(freq, seconds, 8000))
    return root


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


def test_reads_labels_and_speakers_from_the_pattern(fsdd_like: Path) -> None:
    ds = KIND.read(fsdd_like, "tiny", SPLIT, AudioConfig())
    info, rec = ds.info, ds.info.record
    assert info.kind == "audio"
    assert info.class_names == ["3", "7"] and info.num_classes == 2
    assert info.task == "classification"
    assert rec.labels == "pattern" and rec.speaker_names == ["ann", "bob"]
    assert rec.sample_rate == 8000
    assert rec.length == 1120 and info.shape == [1120]  # the longest clip: 0.14 s at 8 kHz
    assert (info.n_train, info.n_val, info.n_test) == (6, 3, 3)
    assert info.record.vocab_size == 256 and rec.encoding == "mulaw"

    batch = ds.batch("train", torch.arange(6))
    assert batch["x"].dtype == torch.int64 and batch["x"].shape == (6, 1120)
    assert int(batch["x"].min()) >= 0 and int(batch["x"].max()) <= 255
    waves = KIND.decode(batch["x"], info)
    lengths = ds.splits["train"].length
    for wave, label, n in zip(waves, batch["y"], lengths, strict=True):
        want = FREQ[info.class_names[int(label)]]
        assert peak_hz(wave[: int(n)], 8000) == pytest.approx(want, abs=8000 / int(n))
        assert np.all(wave[int(n) :] == KIND.decode(torch.tensor([128]), info)[0])  # padding
    assert set(batch["speaker"].tolist()) <= {0, 1}


def test_splits_are_deterministic_and_seeded(fsdd_like: Path) -> None:
    a = KIND.read(fsdd_like, "tiny", SPLIT, AudioConfig())
    b = KIND.read(fsdd_like, "tiny", SPLIT, AudioConfig())
    c = KIND.read(fsdd_like, "tiny", SplitSettings(0.25, 0.25, seed=1), AudioConfig())
    assert a.info.fingerprint == b.info.fingerprint
    assert a.info.fingerprint != c.info.fingerprint
    assert torch.equal(a.splits["test"].x, b.splits["test"].x)


def test_test_speakers_are_held_out(fsdd_like: Path) -> None:
    ds = KIND.read(fsdd_like, "tiny", SPLIT, AudioConfig(test_speakers=["bob"]))
    assert ds.info.n_test == 6 and ds.splits["test"].speaker.tolist() == [1] * 6
    assert ds.info.n_train + ds.info.n_val == 6
    assert 1 not in ds.splits["train"].speaker.tolist()
    with pytest.raises(UsageError, match="carol"):
        KIND.read(fsdd_like, "tiny", SPLIT, AudioConfig(test_speakers=["carol"]))


def test_mulaw_error_is_within_the_quantisation_bound() -> None:
    x = torch.linspace(-1, 1, 20001, dtype=torch.float64)
    tokens = mulaw_encode(x)
    assert tokens.dtype == torch.int64
    assert int(tokens.min()) == 0 and int(tokens.max()) == 255
    assert int(mulaw_encode(torch.tensor(0.0))) == 128
    back = mulaw_decode(tokens).double()
    # each value lies in the cell of its token: between the expansions of the companded
    # value half a level (1/mu) below and above the token's centre
    mu = 255
    y = tokens.double() * 2 / mu - 1

    def expand(v: torch.Tensor) -> torch.Tensor:
        return torch.sign(v) * torch.expm1(v.abs() * math.log1p(mu)) / mu

    lo, hi = expand(y - 1 / mu), expand(y + 1 / mu)
    assert bool(((x >= lo - 1e-6) & (x <= hi + 1e-6)).all())
    # the widest cell is at |x| = 1: (1 - 256 ** (-2 / 255)) * 256 / 255 / 2 = 0.0216...
    assert float((back - x).abs().max()) < 0.0217
    # small values are coded finely: near 0 the error is below 1e-4
    small = x.abs() < 0.001
    assert float((back - x)[small].abs().max()) < 1e-4


def test_mulaw_decode_then_encode_is_exact_on_tokens() -> None:
    tokens = torch.arange(256)
    assert torch.equal(mulaw_encode(mulaw_decode(tokens)), tokens)
    with pytest.raises(UsageError, match="0..255"):
        mulaw_decode(torch.tensor([256]))


def test_float_encoding_gives_waveforms(fsdd_like: Path) -> None:
    ds = KIND.read(fsdd_like, "tiny", SPLIT, AudioConfig(encoding="float"))
    assert ds.info.record.encoding == "float" and ds.info.record.vocab_size == 0
    x = ds.batch("train", torch.arange(2))["x"]
    assert x.dtype == torch.float32 and x.shape == (2, 1120)
    assert float(x.abs().max()) == pytest.approx(0.5, abs=1e-3)  # the sines' amplitude
    # the codec offers both forms on any info: tokens decode the same way
    assert np.array_equal(KIND.decode(x, ds.info), x.numpy())
    tokens = mulaw_encode(x)
    assert np.abs(KIND.decode(tokens, ds.info) - x.numpy()).max() < 0.0217


def test_resampling_and_seconds(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    write_wav(root / "a.wav", sine(440, 0.2, 16000), rate=16000)
    write_wav(root / "b.wav", sine(440, 0.2, 16000), rate=16000)
    write_wav(root / "c.wav", sine(440, 0.2, 8000), rate=8000)
    split = SplitSettings(val_fraction=0.0, test_fraction=0.0)
    ds = KIND.read(root, "mixed", split, AudioConfig(labels="none", encoding="float"))
    assert ds.info.record.sample_rate == 16000  # the rate most files have
    assert ds.info.shape == [3200] and ds.info.num_classes == 0 and ds.info.task == "none"
    for wave in ds.batch("train", torch.arange(3))["x"].numpy():
        assert peak_hz(wave, 16000) == pytest.approx(440, abs=5)
    cfg = AudioConfig(labels="none", sample_rate=4000, seconds=0.05, encoding="float")
    ds = KIND.read(root, "mixed", split, cfg)
    assert ds.info.record.sample_rate == 4000 and ds.info.shape == [200]  # cropped
    cfg = AudioConfig(labels="none", sample_rate=4000, seconds=0.5, encoding="float")
    ds = KIND.read(root, "mixed", split, cfg)
    x = ds.batch("train", torch.arange(3))["x"]
    assert ds.info.shape == [2000] and float(x[:, 800:].abs().max()) == 0.0  # zero-padded
    assert ds.splits["train"].length.tolist() == [800, 800, 800]


def test_8bit_and_float_wavs_are_normalised(tmp_path: Path) -> None:
    wave = sine(440, 0.1, 8000, amp=0.75)
    write_wav(tmp_path / "u8" / "a.wav", wave, dtype=np.uint8)
    write_wav(tmp_path / "f32" / "a.wav", wave, dtype=np.float32)
    split = SplitSettings(val_fraction=0.0, test_fraction=0.0)
    cfg = AudioConfig(encoding="float")
    for name, tol in (("u8", 1 / 256), ("f32", 1 / 32768)):
        ds = KIND.read(tmp_path / name / "a.wav", name, split, cfg)
        x = ds.batch("train", torch.arange(1))["x"][0].numpy()
        assert np.abs(x - wave).max() <= tol + 1e-9


def test_labels_from_folders_and_none(tmp_path: Path) -> None:
    for cls, freq in (("cat", 300.0), ("dog", 600.0)):
        for i in range(3):
            write_wav(tmp_path / "f" / cls / f"take{i}.wav", sine(freq, 0.1, 8000))
    ds = KIND.read(tmp_path / "f", "f", SPLIT, AudioConfig())
    assert ds.info.record.labels == "folders" and ds.info.class_names == ["cat", "dog"]
    assert ds.info.record.speaker_names == []
    ds = KIND.read(tmp_path / "f", "f", SPLIT, AudioConfig(labels="none"))
    assert ds.info.num_classes == 0 and "y" not in ds.batch("train", torch.arange(2))
    with pytest.raises(DataError, match="does not match data.audio.pattern"):
        KIND.read(tmp_path / "f", "f", SPLIT, AudioConfig(labels="pattern"))
    with pytest.raises(DataError, match="data.task=classification cannot work"):
        KIND.read(
            tmp_path / "f",
            "f",
            SplitSettings(0.25, 0.25, task="classification"),
            AudioConfig(labels="none"),
        )


def test_claims() -> None:
    assert KIND.claims(Path("x.WAV")) and not KIND.claims(Path("x.mid"))


def bad_inputs(tmp: Path) -> dict[str, tuple[Path, AudioConfig, str]]:
    """Name -> (path, settings, the file or words the one-line error must name)."""
    text = tmp / "text" / "0_a_0.wav"
    text.parent.mkdir(parents=True)
    text.write_text("not audio at all")
    good = write_wav(tmp / "trunc" / "0_a_0.wav", sine(440, 0.1, 8000))
    torn = tmp / "trunc" / "0_a_1.wav"
    torn.write_bytes(good.read_bytes()[:30])
    stereo = tmp / "stereo" / "0_a_0.wav"
    stereo.parent.mkdir()
    wavfile.write(stereo, 8000, np.zeros((800, 2), dtype=np.int16))
    zero = tmp / "zero" / "0_a_0.wav"
    raw = bytearray(write_wav(tmp / "z.wav", sine(440, 0.1, 8000)).read_bytes())
    raw[24:28] = (0).to_bytes(4, "little")  # the header's sample rate
    zero.parent.mkdir()
    zero.write_bytes(bytes(raw))
    odd = tmp / "odd"
    write_wav(odd / "0_a_0.wav", sine(440, 0.1, 8000), rate=8000)
    write_wav(odd / "0_a_1.wav", sine(440, 0.1, 7919), rate=7919)
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("no audio here")
    mixed = tmp / "mixed"
    write_wav(mixed / "0_a_0.wav", sine(440, 0.1, 8000))
    write_wav(mixed / "take.wav", sine(440, 0.1, 8000))
    flac = tmp / "clip.flac"
    flac.write_bytes(b"fLaC")
    return {
        "not a wav": (text, AudioConfig(), str(text)),
        "corrupt": (tmp / "trunc", AudioConfig(), str(torn)),
        "stereo": (stereo.parent, AudioConfig(), f"{stereo}' has 2 channels"),
        "rate 0": (zero.parent, AudioConfig(), str(zero)),
        "absurd ratio": (odd, AudioConfig(), f"{odd / '0_a_1.wav'}' is at 7919 Hz"),
        "empty folder": (tmp / "empty", AudioConfig(), "found no .wav files"),
        "pattern": (mixed, AudioConfig(labels="pattern"), str(mixed / "take.wav")),
        "other suffix": (flac, AudioConfig(), "is not a .wav file"),
        "missing": (tmp / "nowhere", AudioConfig(), "no such file or folder"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not a wav",
        "corrupt",
        "stereo",
        "rate 0",
        "absurd ratio",
        "empty folder",
        "pattern",
        "other suffix",
        "missing",
    ],
)
def test_bad_input_is_a_one_line_data_error(tmp_path: Path, case: str) -> None:
    path, cfg, needle = bad_inputs(tmp_path)[case]
    with pytest.raises(DataError) as exc:
        KIND.read(path, str(path), SplitSettings(0.0, 0.0), cfg)
    message = str(exc.value)
    assert needle in message and "\n" not in message


def test_stereo_mixes_to_mono_when_asked(tmp_path: Path) -> None:
    left, right = sine(440, 0.1, 8000, 0.5), sine(440, 0.1, 8000, 0.25)
    data = np.round(np.stack([left, right], axis=1) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "s.wav", 8000, data)
    cfg = AudioConfig(mix_to_mono=True, encoding="float")
    ds = KIND.read(tmp_path / "s.wav", "s", SplitSettings(0.0, 0.0), cfg)
    x = ds.batch("train", torch.arange(1))["x"][0].numpy()
    assert np.abs(x - (left + right) / 2).max() < 1e-4


@pytest.mark.parametrize(
    "cfg, needle",
    [
        (AudioConfig(sample_rate=-1), "sample_rate"),
        (AudioConfig(seconds=-0.5), "seconds"),
        (AudioConfig(pattern="{label}_{label}.wav"), "twice"),
        (AudioConfig(pattern="no_fields.wav"), "names no fields"),
        (AudioConfig(pattern="{my-label}.wav"), "field"),
        (AudioConfig(labels="speaker"), "data.audio.labels"),
    ],
)
def test_bad_settings_are_usage_errors(fsdd_like: Path, cfg: AudioConfig, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        KIND.read(fsdd_like, "tiny", SPLIT, cfg)


def test_writes_wavs_spectrogram_and_npy(fsdd_like: Path, tmp_path: Path) -> None:
    ds = KIND.read(fsdd_like, "tiny", SPLIT, AudioConfig())
    batch = ds.batch("train", torch.arange(4))
    want = KIND.decode(batch["x"], ds.info)
    out = tmp_path / "out" / "digits.wav"
    files = KIND.write(batch["x"], out, ds.info)
    assert [f.name for f in files] == [
        "digits-000.wav", "digits-001.wav", "digits-002.wav", "digits-003.wav",
        "digits-spectrogram.png",
    ]  # fmt: skip
    for f, w in zip(files[:4], want, strict=True):
        rate, data = wavfile.read(f)
        assert rate == 8000 and data.dtype == np.int16 and len(data) == 1120
        assert np.abs(data / 32768.0 - w).max() <= 1 / 32768 + 1e-9
    png = Image.open(files[4])
    # 4 spectrograms of n_fft // 2 + 1 = 129 frequency rows, 2-pixel gaps; 1 + 1120 // 64 frames
    assert png.mode == "L" and png.size == (18, 4 * 129 + 3 * 2)

    files = KIND.write(batch["x"], out, ds.info, bits=8, spectrogram=False)
    rate, data = wavfile.read(files[0])
    assert len(files) == 4 and data.dtype == np.uint8
    assert np.abs((data.astype(float) - 128) / 128 - want[0]).max() <= 1 / 256 + 1e-9

    files = KIND.write(batch["x"], out, ds.info, per_class=True, classes=batch["y"])
    names = [ds.info.class_names[int(c)] for c in sorted(set(batch["y"].tolist()))]
    assert [f.name for f in files] == [
        *(f"digits-{n}.wav" for n in names),
        "digits-spectrogram.png",
    ]
    for f, c in zip(files, sorted(set(batch["y"].tolist())), strict=False):
        k = int((batch["y"] == c).sum())
        assert len(wavfile.read(f)[1]) == k * 1120 + (k - 1) * 2000  # 0.25 s gaps at 8 kHz

    npy = KIND.write(batch["x"], tmp_path / "out" / "w.npy", ds.info)
    arr = np.load(npy[0])
    assert arr.dtype == np.float32 and arr.shape == (4, 1120) and np.array_equal(arr, want)
    with pytest.raises(UsageError, match="--out x.mid"):
        KIND.write(batch["x"], tmp_path / "x.mid", ds.info)
    with pytest.raises(UsageError, match="bits=12"):
        KIND.write(batch["x"], out, ds.info, bits=12)


def test_spectrogram_shows_the_sine(tmp_path: Path) -> None:
    """The brightest row of a 1 kHz sine's spectrogram is the 1 kHz bin (8 kHz, 256-point FFT:
    bin 32 of 129, drawn upside down)."""
    from genlab.data.audio import spectrogram_png

    png = Image.open(io.BytesIO(spectrogram_png(sine(1000, 0.5, 8000)[None], 8000)))
    rows = np.asarray(png).astype(float).mean(axis=1)
    assert 128 - int(rows.argmax()) == 32


@pytest.mark.skipif(not FSDD.is_dir(), reason=f"the Free Spoken Digit Dataset is not at {FSDD}")
def test_reads_the_free_spoken_digit_dataset() -> None:
    ds = KIND.read(FSDD, str(FSDD), SplitSettings(), AudioConfig(test_speakers=["theo"]))
    info, rec = ds.info, ds.info.record
    assert info.class_names == [str(d) for d in range(10)]
    assert rec.speaker_names == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert rec.sample_rate == 8000 and rec.labels == "pattern"
    assert info.n_train + info.n_val + info.n_test == 3000 and info.n_test == 500
    assert rec.length == 18262  # the longest recording, 2.28 s
    assert torch.bincount(ds.splits["test"].y, minlength=10).tolist() == [50] * 10
