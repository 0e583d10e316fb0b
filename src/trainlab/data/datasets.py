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

from trainlab.data.arrays import ArrayData
from trainlab.data.loaders import CIFAR10_CLASSES, read_image, table_dataset
from trainlab.data.registry import DATASETS
from trainlab.errors import DataError
from trainlab.params import StrictModel

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


SKLEARN_SHAPES = {  # samples, features, classes — listed without loading the data
    "load_iris": (150, 4, 3),
    "load_wine": (178, 13, 3),
    "load_breast_cancer": (569, 30, 2),
    "load_digits": (1797, 64, 10),
    "load_diabetes": (442, 10, None),
}


def _register_sklearn(name: str, loader: str, task: str, description: str) -> None:
    samples, features, classes = SKLEARN_SHAPES[loader]
    DATASETS.add(
        name,
        lambda params, _l=loader, _t=task: _sklearn(_l, _t),
        description=description,
        task=task,
        source=f"scikit-learn {loader}()",
        samples=samples,
        features=features,
        classes=classes,
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
    samples=10000,
    features="1x28x28",
    classes=10,
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


def sha256_file(path: Path, gunzip: bool = False) -> str:
    """SHA-256 of a file's bytes (of its decompressed bytes with `gunzip`)."""
    raw = path.read_bytes()
    return hashlib.sha256(gzip.decompress(raw) if gunzip else raw).hexdigest()


def shipped_bytes(folder: str, name: str, sha256: str) -> bytes:
    """A shipped file's original bytes (stored gzipped), checked against its official SHA-256."""
    path = FILES / folder / f"{name}.gz"
    if not path.is_file():
        raise DataError(f"dataset file '{path}' is missing; reinstall trainlab")
    raw = gzip.decompress(path.read_bytes())
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise DataError(f"dataset file '{path}' is corrupt (checksum mismatch); reinstall trainlab")
    return raw


# ------------------------------------------------------------------------ Adult
ADULT_SHA256 = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}
ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
ADULT_CATEGORICAL = [
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
]


@lru_cache(maxsize=2)
def _adult_table(name: str):
    import csv
    import io

    from trainlab.data.table import Table

    text = shipped_bytes("adult", name, ADULT_SHA256[name]).decode("ascii")
    rows = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or row[0].startswith("|"):
            continue  # blank line, or adult.test's "|1x3 Cross validator"
        row[-1] = row[-1].rstrip(".")  # test labels end with a period
        rows.append([c.strip() for c in row])
    return Table(list(ADULT_COLUMNS), rows, f"adult/{name}")


@DATASETS.register(
    "adult",
    description="UCI Adult census income (>50K?): official train 32,561 + test 16,281 rows, "
    "6 numeric + 8 categorical columns, '?' = missing",
    task="classification",
    source="UCI Adult, Becker & Kohavi 1996 (shipped; CC BY 4.0)",
    samples=48842,
    features=14,
    classes=2,
    preset="tabular",
)
def load_adult(params: StrictModel) -> ArrayData:
    """Raw typed columns (categoricals as strings); the official test file is the test split."""

    data = table_dataset(
        [_adult_table("adult.data"), _adult_table("adult.test")],
        "income",
        categorical=ADULT_CATEGORICAL,
        missing=("?",),
        task="classification",
        source="UCI Adult (shipped with trainlab)",
    )
    return data


# ------------------------------------------------------------------ rt-polarity
RT_SHA256 = {
    "rt-polarity.neg": "4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca",
    "rt-polarity.pos": "2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0",
}


def rt_polarity_lines(name: str) -> list[str]:
    """The snippets of one rt-polarity file, decoded from Windows-1252."""
    raw = shipped_bytes("rt_polarity", name, RT_SHA256[name])
    # Split the bytes first: cp1252's 0x85 (…) decoded as latin-1 is U+0085, a line break.
    return [ln.decode("cp1252").strip() for ln in raw.split(b"\n") if ln.strip()]


@DATASETS.register(
    "rt_polarity",
    description="Movie-review sentence polarity (Pang & Lee 2005): 5,331 positive + 5,331 "
    "negative snippets; raw text, tokenized in preprocessing",
    task="classification",
    source="Pang & Lee sentence polarity v1.0 (shipped; CC BY 4.0)",
    samples=10662,
    features="text",
    classes=2,
)
def load_rt_polarity(params: StrictModel) -> ArrayData:
    """Sentences as a (N,) string array; labels neg=0, pos=1."""
    neg, pos = rt_polarity_lines("rt-polarity.neg"), rt_polarity_lines("rt-polarity.pos")
    X = np.empty(len(neg) + len(pos), dtype=object)
    X[:] = neg + pos
    y = np.asarray([0] * len(neg) + [1] * len(pos), dtype=np.int64)
    return ArrayData(X, y, "classification", ["neg", "pos"], source="rt-polarity v1.0 (shipped)")


# ---------------------------------------------------------------- CIFAR-10 sample
@lru_cache(maxsize=1)
def _cifar10_sample() -> tuple[np.ndarray, np.ndarray]:

    folder = FILES / "cifar10_sample"
    sums = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    for name, digest in sums.items():
        if sha256_file(folder / name) != digest:
            raise DataError(f"dataset file '{folder / name}' is corrupt; reinstall trainlab")
    rows = [ln.split(",") for ln in (folder / "trainLabels.csv").read_text().splitlines() if ln]
    rows = [r for r in rows if r[0] != "id"]
    images = np.stack([read_image(folder / "train" / r[0], None, False) for r in rows])
    labels = np.asarray([CIFAR10_CLASSES.index(r[1]) for r in rows], dtype=np.int64)
    return images, labels


@DATASETS.register(
    "cifar10_sample",
    description="CIFAR-10, the first 200 training images (lossless PNG): 3x32x32, 10 classes",
    task="classification",
    source="Krizhevsky 2009, via Kaggle PNGs (shipped)",
    samples=200,
    features="3x32x32",
    classes=10,
)
def load_cifar10_sample(params: StrictModel) -> ArrayData:
    """Pixels in [0, 1], shape (200, 3, 32, 32)."""

    images, labels = _cifar10_sample()
    return ArrayData(
        images.copy(),
        labels.copy(),
        "classification",
        list(CIFAR10_CLASSES),
        source="CIFAR-10 first 200 training images (shipped)",
    )
