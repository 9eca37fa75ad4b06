"""Fabricated event datasets in the exact on-disk layouts tonic reads, for tests and the loading benchmark (no network).

DVS Gesture. ``make_dvsgesture(root)`` writes ``root/DVSGesture/{ibmGestureTrain,ibmGestureTest}.tar.gz`` (tiny
real archives: tonic checks only that they exist) and ``root/DVSGesture/ibmGesture{Train,Test}/userXX_<lighting>/
<label>.npy``, each an ``(N, 4)`` int64 array of x, y, p, t in ms (tonic multiplies t by 1000) on the native
128 x 128 sensor. Recording k of a split is ``user{k // 11 + 1:02d}_<lighting>/{k % 11}.npy`` (labels 0..10 in
turn). tonic needs at least 100 ``.npy`` files per split, else it tries to download.

Two event patterns (``pattern``), both a blob of events whose place depends on the label:

- ``"still"`` (the tests' default): a 5 x 5-pixel blob at x = 8 + 10 label, y = 40 + 4 label, about one event
  per ms, so that it survives tonic's Denoise and a test can find the label in the frames.
- ``"gesture"`` (``ttfs-lab bench``'s loading throughput): a 6 s gesture, a blob (sigma 8 pixels) moving on a
  label-dependent circle, plus 10 % background noise, so that its event frames are about as dense (and as
  compressible in the frame cache) as real ones.

N-MNIST. ``make_nmnist(root)`` writes ``root/NMNIST/{train,test}.zip`` (tiny real archives; tonic checks only
that they exist) and ``root/NMNIST/{Train,Test}/<digit>/<k:05d>.bin``: 40-bit event records, 5 bytes per event,
byte 0 x, byte 1 y, then the polarity in bit 7 of byte 2 and the 23-bit timestamp in us in the rest of bytes
2-4 (big-endian), exactly as tonic's ``read_mnist_file`` decodes them (``nmnist_records``). Recording k has
label k % 10; its events are a still 3 x 3 blob at x = 2 + 3 label, y = 17 on the 34 x 34 sensor, one event
about every ms. tonic downloads unless a split holds at least 10,000 ``.bin`` files (the default here).

CIFAR10-DVS. ``make_cifar10dvs(root)`` writes ``root/CIFAR10DVS/CIFAR10DVS.zip`` (a tiny real archive) and
``root/CIFAR10DVS/<class>/cifar10_<class>_<k>.aedat4`` for the ten classes: AEDAT 4.0 files (``aedat4_bytes``:
the ``#!AER-DAT4.0\\r\\n`` magic, a little-endian uint32 length and the IOHeader flatbuffer "IOHE" with compression
NONE and the XML description of one 128 x 128 "EVTS" stream, then packets of int32 stream id, uint32 length and a
size-prefixed EventPacket flatbuffer "EVTS" of 16-byte events: int64 t in us, int16 x, int16 y, bool on), as the
``aedat`` decoder behind tonic's ``read_aedat4`` reads them. Recording k of class c is a still 5 x 5 blob at
x = 8 + 12 c, y = 64. tonic downloads unless the folder holds at least 1,000 ``.aedat4`` files (100 per class,
the default here).
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
import zipfile
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


def _tiny_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README", "fabricated by ttfs_lab.data.fabricate\n")


def _still_blob(cx: int, cy: int, radius: int, n: int, rng: np.random.Generator, limit: int, dt_us: int = 1000):
    """x, y, p, t[us] of n events in a (2 radius + 1)^2 blob around (cx, cy), about one per ``dt_us``."""
    x = np.clip(cx + rng.integers(-radius, radius + 1, n), 0, limit - 1)
    y = np.clip(cy + rng.integers(-radius, radius + 1, n), 0, limit - 1)
    t = np.sort(rng.integers(0, max(n, 16) * dt_us, n))
    return x, y, rng.integers(0, 2, n), t


# -- N-MNIST ---------------------------------------------------------------------------------------------------

NMNIST_SPLITS = {"train": "Train", "test": "Test"}


def nmnist_records(x, y, p, t) -> bytes:
    """N-MNIST's 40-bit records: x (8 bits), y (8 bits), polarity (1 bit), timestamp in us (23 bits), big-endian."""
    x, y, p, t = (np.asarray(v, dtype=np.int64) for v in (x, y, p, t))
    if len(t) and (t.min() < 0 or t.max() >= 1 << 23 or x.max() > 255 or y.max() > 255):
        raise ValueError("N-MNIST records hold x, y < 256 and timestamps < 2**23 us")
    records = np.empty((len(t), 5), dtype=np.uint8)
    records[:, 0], records[:, 1] = x, y
    records[:, 2] = (p.astype(bool) << 7) | ((t >> 16) & 0x7F)
    records[:, 3], records[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return records.tobytes()


def make_nmnist(root, n_per_split: int = 10000, events: int = 60, seed: int = 0) -> Path:
    """Write an N-MNIST tree tonic accepts without downloading (``events`` per recording); return ``root/NMNIST``."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "NMNIST"
    base.mkdir(parents=True, exist_ok=True)
    for split, folder in NMNIST_SPLITS.items():
        _tiny_zip(base / f"{split}.zip")
        for label in range(10):
            (base / folder / str(label)).mkdir(parents=True, exist_ok=True)
        labels = np.arange(n_per_split) % 10  # all recordings of the split at once: 20,000 files in a few seconds
        x = np.clip(2 + 3 * labels[:, None] + rng.integers(-1, 2, (n_per_split, events)), 0, 33)
        y = np.clip(17 + rng.integers(-1, 2, (n_per_split, events)), 0, 33)
        t = np.sort(rng.integers(0, max(events, 16) * 1000, (n_per_split, events)), axis=1)
        records = memoryview(nmnist_records(x.ravel(), y.ravel(), rng.integers(0, 2, x.size), t.ravel()))
        size = 5 * events
        for k in range(n_per_split):
            with open(os.path.join(base, folder, str(labels[k]), f"{k:05d}.bin"), "wb") as f:
                f.write(records[k * size:(k + 1) * size])
    return base


def nmnist_files(root, split: str = "train") -> list[Path]:
    """The fabricated ``.bin`` recordings of a split (``train`` or ``test``), sorted."""
    return sorted((Path(root) / "NMNIST" / NMNIST_SPLITS[split]).glob("*/*.bin"))


# -- CIFAR10-DVS -----------------------------------------------------------------------------------------------

CIFAR10DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
AEDAT4_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])  # 16 bytes
AEDAT4_DESCRIPTION = (
    '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
    '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
    '<attr key="compression" type="string">NONE</attr>'
    '<attr key="originalOutputName" type="string">events</attr>'
    '<attr key="typeIdentifier" type="string">EVTS</attr>'
    '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
    '<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
    '<attr key="source" type="string">DVS128</attr></node></node></node></dv>'
)


def _aedat4_ioheader(description: str) -> bytes:
    """The IOHeader flatbuffer (identifier IOHE): compression and file_data_position left at their defaults
    (NONE, -1: packets run to the end of the file), the description string."""
    text = description.encode()
    # root offset | "IOHE" | vtable at 8: (10 bytes, table 8 bytes, fields 0, 0, 4) + 2 pad | table at 20:
    # soffset to the vtable, offset to the string at 28 | string: length, bytes, NUL, padding to 4
    header = struct.pack("<I", 20) + b"IOHE" + struct.pack("<5H", 10, 8, 0, 0, 4) + b"\0\0"
    header += struct.pack("<iI", 20 - 8, 28 - 24) + struct.pack("<I", len(text)) + text + b"\0"
    return header + b"\0" * (-len(header) % 4)


def _aedat4_packet(t, x, y, on, stream_id: int = 0) -> bytes:
    """One packet: stream id, length, and a size-prefixed EventPacket flatbuffer (identifier EVTS)."""
    elements = np.zeros(len(t), dtype=AEDAT4_EVENT)
    elements["t"], elements["x"], elements["y"], elements["on"] = t, x, y, on
    # root offset | "EVTS" | vtable at 12 (after the size prefix): (6 bytes, table 8 bytes, field 0 at 4) + 2 pad |
    # table at 20: soffset 8 to the vtable, offset 4 to the vector at 28 | vector: count, 16-byte structs at 32
    body = struct.pack("<I", 16) + b"EVTS" + struct.pack("<3H", 6, 8, 4) + b"\0\0" + struct.pack("<iI", 8, 4)
    body += struct.pack("<I", len(t)) + elements.tobytes()
    payload = struct.pack("<I", len(body)) + body
    return struct.pack("<iI", stream_id, len(payload)) + payload


def aedat4_bytes(t, x, y, on, width: int = 128, height: int = 128, packets: int = 2) -> bytes:
    """An uncompressed AEDAT 4.0 file of one polarity-event stream, its events split over ``packets`` packets."""
    header = _aedat4_ioheader(AEDAT4_DESCRIPTION.format(width=width, height=height))
    parts = np.array_split(np.arange(len(t)), max(1, packets))
    body = b"".join(_aedat4_packet(t[i], x[i], y[i], on[i]) for i in parts if len(i))
    return AEDAT4_MAGIC + struct.pack("<I", len(header)) + header + body


def make_cifar10dvs(root, n_per_class: int = 100, events: int = 200, seed: int = 0) -> Path:
    """Write a CIFAR10-DVS tree tonic accepts without downloading (``events`` per recording); return
    ``root/CIFAR10DVS``."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "CIFAR10DVS"
    base.mkdir(parents=True, exist_ok=True)
    _tiny_zip(base / "CIFAR10DVS.zip")
    for label, name in enumerate(CIFAR10DVS_CLASSES):
        (base / name).mkdir(exist_ok=True)
        for k in range(n_per_class):
            x, y, p, t = _still_blob(8 + 12 * label, 64, 2, events, rng, 128)
            t = t + 1_490_000_000_000_000 + k * 10_000_000  # DV writes absolute times (us since 1970)
            (base / name / f"cifar10_{name}_{k}.aedat4").write_bytes(aedat4_bytes(t, x, y, p))
    return base


def cifar10dvs_files(root) -> list[Path]:
    """The fabricated ``.aedat4`` recordings, sorted by path."""
    return sorted((Path(root) / "CIFAR10DVS").glob("*/*.aedat4"))
