from __future__ import annotations

import numpy as np
import pytest

from calf_forecaster.datasets import ett_split, find_ett_file, load_ett
from calf_forecaster.metrics import mae, mase, mse, smape
from conftest import DATA_DIR


def test_ett_split_is_the_standard_protocol() -> None:
    split = ett_split("ETTh1", seq_len=96)
    assert split.train == (0, 8640)
    assert split.validation == (8640 - 96, 11520) and split.test == (11520 - 96, 14400)
    assert ett_split("ETTm2", seq_len=96).test == (4 * 11520 - 96, 4 * 14400)
    with pytest.raises(ValueError, match="`name`"):
        ett_split("ETTx", 96)


def test_load_ett_from_a_data_directory() -> None:
    if not (DATA_DIR / "ett" / "ETTh1.csv").is_file():
        pytest.skip("shared data not present")
    table = load_ett("ETTh1", DATA_DIR, download=False)
    assert table.values.shape == (17420, 7) and table.columns[-1] == "OT"
    assert str(table.timestamps[0]) == "2016-07-01T00:00:00"


def test_missing_file_without_download_says_where_to_put_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CALF_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="ett/ETTh2.csv"):
        find_ett_file("ETTh2", tmp_path, download=False)


def test_metrics_on_known_values() -> None:
    forecast, actual = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    assert mse(forecast, actual) == pytest.approx(5 / 3)
    assert mae(forecast, actual) == pytest.approx(1.0)
    assert smape(forecast, actual) == pytest.approx((0 + 200 / 5 + 200 * 2 / 6) / 3)
    assert mase(forecast, actual, np.array([1.0, 2.0, 4.0, 7.0]), 1) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="shape"):
        mse(forecast, actual[:2])
