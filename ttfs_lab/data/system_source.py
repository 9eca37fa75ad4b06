"""A dataset's files from a system-wide copy (e.g. a Debian data package), used when ``data_dir`` lacks them.

Debian's ``dataset-fashion-mnist`` installs the four ``*-ubyte.gz`` files in ``/usr/share/datasets/fashion-mnist``.
Debian re-compressed them, so their ``.gz`` checksums differ from the upstream ones that torchvision checks; the
uncompressed files are the originals. ``SystemCopy.provide`` therefore decompresses each file into the folder
torchvision reads (``data_dir/FashionMNIST/raw``), checks the md5 of the uncompressed bytes, and only then moves
it into place (atomically), so an interrupted or corrupt copy never looks like a good one.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ttfs_lab.errors import DataError


SYSTEM_DATASETS_ENV = "TTFS_LAB_SYSTEM_DATASETS"  # overrides /usr/share/datasets (tests point it elsewhere)


@dataclass(frozen=True)
class SystemCopy:
    """``<root>/<subfolder>`` holds ``<name>.gz`` for every name in ``md5`` (md5 of the uncompressed file), with
    root ``/usr/share/datasets`` or ``$TTFS_LAB_SYSTEM_DATASETS``; ``install`` says how to get it."""

    subfolder: str
    install: str
    md5: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return os.path.join(os.environ.get(SYSTEM_DATASETS_ENV, "/usr/share/datasets"), self.subfolder)

    def available(self) -> bool:
        return all((Path(self.folder) / f"{name}.gz").is_file() for name in self.md5)

    def provide(self, location: str) -> bool:
        """Make ``location`` hold the files. False when neither ``location`` nor the system copy has them (the
        caller then downloads); tells the user which copy is used."""
        target = Path(location)
        if all((target / name).is_file() for name in self.md5):
            print(f"data: using {target}")
            return True
        if not self.available():
            return False
        target.mkdir(parents=True, exist_ok=True)
        for name, expected in self.md5.items():
            if not (target / name).is_file():
                self._decompress(Path(self.folder) / f"{name}.gz", target / name, expected)
        print(f"data: using the system copy {self.folder} (decompressed into {target})")
        return True

    def _decompress(self, source: Path, dest: Path, expected: str) -> None:
        partial = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
        digest = hashlib.md5()
        try:
            with gzip.open(source, "rb") as fin, open(partial, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    digest.update(chunk)
                    fout.write(chunk)
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            partial.unlink(missing_ok=True)
            raise DataError(f"{source} is not a readable gzip file ({exc}); reinstall it ({self.install}) "
                            "or place the uncompressed files in data.data_dir") from None
        if digest.hexdigest() != expected:
            partial.unlink(missing_ok=True)
            raise DataError(f"{source} is corrupt (md5 of its contents {digest.hexdigest()}, expected {expected}); "
                            f"reinstall it ({self.install}) or place the uncompressed files in data.data_dir")
        os.replace(partial, dest)
