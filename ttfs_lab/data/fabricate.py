"""A fabricated DVS Gesture tree in the layout tonic reads, for tests and the loading benchmark (no network).

``make_dvsgesture(root)`` writes ``root/DVSGesture/{ibmGestureTrain,ibmGestureTest}.tar.gz`` (tiny real archives:
tonic checks only that they exist) and ``root/DVSGesture/ibmGesture{Train,Test}/userXX_<lighting>/<label>.npy``,
each an ``(N, 4)`` int64 array of x, y, p, t in ms (tonic multiplies t by 1000) on the native 128 x 128 sensor.
Recording k of a split is ``user{k // 11 + 1:02d}_<lighting>/{k % 11}.npy`` (labels 0..10 in turn). tonic needs
at least 100 ``.npy`` files per split, else it tries to download.

Two event patterns (``pattern``), both a blob of events whose place depends on the label:

- ``"still"`` (the tests' default): a 5 x 5-pixel blob at x = 8 + 10 label, y = 40 + 4 label, about one event
  per ms, so that it survives tonic's Denoise and a test can find the label in the frames.
- ``"gesture"`` (``ttfs-lab bench``'s loading throughput): a 6 s gesture, a blob (sigma 8 pixels) moving on a
  label-dependent circle, plus 10 % background noise, so that its event frames are about as dense (and as
  compressible in the frame cache) as real ones.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from ttfs_lab.registry import check_choice

LIGHTINGS = ["fluorescent", "fluorescent_led", "lab", "led", "natural"]
SPLITS = ("ibmGestureTrain", "ibmGestureTest")


def still_blob_events(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 4) x, y, p, t[ms]: a 5 x 5-pixel blob at a label-dependent place, about one event per ms."""
    cx, cy = 8 + 10 * label, 40 + 4 * label
    x = np.clip(cx + rng.integers(-2, 3, n), 0, 127)
    y = np.clip(cy + rng.integers(-2, 3, n), 0, 127)
    p = rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, max(n, 16), n))
    return np.stack([x, y, p, t], axis=1).astype(np.int64)


def gesture_events(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 4) x, y, p, t[ms] over 6 s: a blob moving on a label-dependent circle, 10 % uniform background noise."""
    t = np.sort(rng.integers(0, 6000, n))
    phase = 2 * np.pi * t / 6000 * (1 + label % 3) + label
    cx, cy = 64 + 35 * np.cos(phase), 64 + 35 * np.sin(phase * (1 + label % 2))
    x = cx + rng.normal(0, 8, n)
    y = cy + rng.normal(0, 8, n)
    noise = rng.random(n) < 0.1
    x[noise], y[noise] = rng.integers(0, 128, noise.sum()), rng.integers(0, 128, noise.sum())
    return np.stack([np.clip(x, 0, 127), np.clip(y, 0, 127), rng.integers(0, 2, n), t], 1).astype(np.int64)


PATTERNS = {"still": still_blob_events, "gesture": gesture_events}


def _tiny_archive(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        data = b"fabricated by ttfs_lab.data.fabricate\n"
        info = tarfile.TarInfo("README")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def make_dvsgesture(root, n_per_split: int = 100, events: int = 300, seed: int = 0, pattern: str = "still") -> Path:
    """Write a DVS Gesture tree tonic accepts without downloading (``events`` per recording); return
    ``root/DVSGesture``."""
    draw = PATTERNS[check_choice("pattern", pattern, tuple(PATTERNS))]
    rng = np.random.default_rng(seed)
    base = Path(root) / "DVSGesture"
    for folder in SPLITS:
        (base / folder).mkdir(parents=True, exist_ok=True)
        _tiny_archive(base / f"{folder}.tar.gz")
        for k in range(n_per_split):
            user, label = k // 11 + 1, k % 11
            recording = base / folder / f"user{user:02d}_{LIGHTINGS[user % len(LIGHTINGS)]}"
            recording.mkdir(exist_ok=True)
            np.save(recording / f"{label}.npy", draw(label, events, rng))
    return base


def dvs_files(root, split: str = "train") -> list[Path]:
    """The fabricated ``.npy`` recordings of a split (``train`` or ``test``), sorted."""
    folder = SPLITS[0] if split == "train" else SPLITS[1]
    return sorted((Path(root) / "DVSGesture" / folder).glob("*/*.npy"))
