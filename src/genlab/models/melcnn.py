"""An audio classifier on log-mel spectrograms: the frozen judge of audio samples
(genlab.judges.audio_judge trains it; genlab.metrics.audio scores samples with it).

A clip (mu-law tokens or a float waveform) -> its short-time Fourier transform (`torch.stft`,
Hann window of `n_fft` samples, hop n_fft / 2) -> power in `mels` triangular mel bands (the HTK
mel scale, 0 Hz to half the sample rate) -> log -> a batch norm -> three blocks of 3x3
convolution, batch norm, relu and 2x2 max pooling -> the mean and maximum over time and
frequency of the last block (the `features` the Frechet distance compares) -> dropout -> a
linear layer to the class logits. Global pooling makes it read clips of any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.data.audio import mulaw_decode
from genlab.errors import UsageError
from genlab.models.base import GenerativeModel


@dataclass
class Config:
    n_fft: int = 256
    """STFT window (samples); 32 ms at 8 kHz."""
    mels: int = 40
    """Mel bands."""
    channels: int = 16
    """Channels of the first convolution block (doubled in each of the next two)."""
    dropout: float = 0.3
    """Dropout before the output layer."""

    def validate(self) -> None:
        if self.n_fft < 16 or self.mels < 4 or self.channels < 1:
            raise UsageError("model.n_fft must be >= 16, model.mels >= 4, model.channels >= 1")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"model.dropout must be in [0, 1); got {self.dropout}")


def mel_filters(n_fft: int, mels: int, rate: int) -> torch.Tensor:
    """Triangular mel filters (mels, n_fft // 2 + 1) on the HTK mel scale, 0 Hz .. rate / 2."""

    def mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def hz(m: torch.Tensor) -> torch.Tensor:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    bins = torch.linspace(0, rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    top = mel(torch.tensor(rate / 2, dtype=torch.float64))
    edges = hz(torch.linspace(0, float(top), mels + 2, dtype=torch.float64))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins - lo) / (mid - lo)
    down = (hi - bins) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0).float()


class MelCNN(GenerativeModel):
    family = "melcnn"
    description = "audio classifier: log-mel spectrogram (torch.stft) -> CNN (the audio judge)"
    discriminative = True
    Config = Config
    tiny = ("model.n_fft=64", "model.mels=8", "model.channels=4")
    tiny_data = "audio"

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="audio", labels=True)
        c = cfg.channels
        self.register_buffer(
            "filters", mel_filters(cfg.n_fft, cfg.mels, info.record.sample_rate), persistent=False
        )
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.norm = nn.BatchNorm2d(1)
        blocks: list[nn.Module] = []
        for a, b in ((1, c), (c, 2 * c), (2 * c, 4 * c)):
            blocks += [
                nn.Conv2d(a, b, 3, padding=1),
                nn.BatchNorm2d(b),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(8 * c, info.num_classes)

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, T), mu-law tokens or waveforms -> log-mel spectrograms (B, 1, mels, frames)."""
        if not x.is_floating_point():
            x = mulaw_decode(x.cpu(), self.info.record.levels).to(self.window.device)
        n_fft = self.cfg.n_fft
        if x.shape[1] < n_fft:
            x = F.pad(x, (0, n_fft - x.shape[1]))
        spec = torch.stft(
            x.float(), n_fft, hop_length=n_fft // 2, window=self.window, return_complex=True
        )
        power = spec.abs().pow(2)  # (B, F, frames)
        return torch.log(self.filters @ power + 1e-6).unsqueeze(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, T) -> judge features (B, 8 x channels): mean and max of the last block."""
        h = self.blocks(self.norm(self.log_mel(x)))
        return torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, T) -> class logits (B, K), with autograd (training)."""
        return self.head(self.drop(self.features(x)))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, T) -> class logits (B, K), without autograd."""
        return self.logits(x)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.logits(batch["x"])
        y = batch["y"]
        return {
            "loss": F.cross_entropy(logits, y),
            "accuracy": (logits.argmax(-1) == y).float().mean(),
        }
