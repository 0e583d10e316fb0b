"""Built-in datasets: real data that ships with trainlab or with scikit-learn.

Nothing is downloaded. MNIST's official 10,000-image test set is shipped inside the
package (see `files/README.md` for provenance and licence) and checked on load.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from trainlab.config.base import StrictModel
from trainlab.data.arrays import ArrayData
from trainlab.errors import DataError
from trainlab.registry import Registry

DATASETS: Registry = Registry("dataset")

FILES = Path(str(resources.files("trainlab.data") / "files"))


def _sklearn(loader_name: str, task: str) -> ArrayData:
    import sklearn.datasets as skd

    bunch = getattr(skd, loader_name)()
    X = np.asarray(bunch.data, dtype=np.float32)
    if task == "classification":
        y = np.asarray(bunch.target, dtype=np.int64)
        names = getattr(bunch, "target_names", None)
        classes = [str(c) for c in names] if names is not None else [str(c) for c in np.unique(y)]
    else:
        y = np.asarray(bunch.target, dtype=np.float32)
        classes = None
    features = [str(f) for f in getattr(bunch, "feature_names", [])] or None
    return ArrayData(X, y, task, classes, features, source=f"sklearn.datasets.{loader_name}")


def _register_sklearn(name: str, loader: str, task: str, description: str) -> None:
    DATASETS.add(
        name,
        lambda params, _l=loader, _t=task: _sklearn(_l, _t),
        description=description,
        task=task,
        source=f"scikit-learn {loader}()",
    )


_register_sklearn(
    "iris", "load_iris", "classification", "Iris flowers: 150 samples, 4 features, 3 classes"
)
_register_sklearn(
    "wine", "load_wine", "classification", "Wine cultivars: 178 samples, 13 features, 3 classes"
)
_register_sklearn(
    "breast_cancer",
    "load_breast_cancer",
    "classification",
    "Breast cancer Wisconsin: 569 samples, 30 features, 2 classes (binary)",
)
_register_sklearn(
    "digits",
    "load_digits",
    "classification",
    "8x8 handwritten digits: 1,797 samples, 64 features, 10 classes",
)
_register_sklearn(
    "diabetes",
    "load_diabetes",
    "regression",
    "Diabetes progression: 442 samples, 10 features, regression",
)

MNIST_MD5 = {
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}


def read_idx(path: Path, expected_md5: str | None = None) -> np.ndarray:
    """Parse a (gzipped) IDX file as used by MNIST; verify the decompressed MD5 if given."""
    if not path.is_file():
        raise DataError(
            f"dataset file '{path}' is missing; reinstall trainlab or pass a local path"
        )
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if expected_md5 and hashlib.md5(raw, usedforsecurity=False).hexdigest() != expected_md5:
        raise DataError(f"dataset file '{path}' is corrupt (checksum mismatch); reinstall trainlab")
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim < 1:
        raise DataError(f"'{path}' is not an unsigned-byte IDX file (magic {magic:#010x})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(
            f"'{path}' is truncated: expected {int(np.prod(dims))} values, got {data.size}"
        )
    return data.reshape(dims)


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    folder = FILES / "mnist"
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz", MNIST_MD5["t10k-images-idx3-ubyte.gz"])
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz", MNIST_MD5["t10k-labels-idx1-ubyte.gz"])
    return images, labels


@DATASETS.register(
    "mnist",
    description="MNIST handwritten digits, the official 10,000-image test set: 1x28x28, 10 classes",
    task="classification",
    source="LeCun et al. 1998 (shipped; CC BY-SA 3.0)",
)
def load_mnist(params: StrictModel) -> ArrayData:
    """Pixels scaled to [0, 1], shape (N, 1, 28, 28); labels 0-9."""
    images, labels = _mnist_arrays()
    X = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return ArrayData(
        X,
        labels.astype(np.int64),
        "classification",
        [str(i) for i in range(10)],
        source="MNIST t10k (shipped with trainlab)",
    )
