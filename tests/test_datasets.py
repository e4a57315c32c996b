"""calf_forecaster.paths and calf_forecaster.datasets: directories, files, splits, M4 pieces.

Real files come from the shared data folder (tests skip when it is absent); nothing is downloaded:
the download path is exercised with ``file://`` URLs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from calf_forecaster import paths, prototypes
from calf_forecaster.datasets import (
    LONG_TERM_DATASETS,
    M4_GROUPS,
    ChecksumMismatchError,
    M4TrainingDataset,
    custom_split,
    ett_split,
    few_shot_split,
    find_data_file,
    find_ett_file,
    load_ett,
    load_long_term,
    load_m4,
    load_m4_naive2,
    long_term_dataset,
    long_term_split,
    m4_holdout,
    m4_last_windows,
    n_windows,
    read_csv_table,
)
from calf_forecaster.datasets._files import sha256_of
from calf_forecaster.datasets.m4 import cut_point_range, m4_window
from conftest import DATA_DIR

try:
    from calf_forecaster.preprocessing import sliding_windows
except ImportError:  # the module's name before the data -> preprocessing rename
    from calf_forecaster.preprocessing import sliding_windows

ETTH1 = DATA_DIR / "ett" / "ETTh1.csv"
HOURLY = DATA_DIR / "m4" / "Hourly-train.csv"
needs_etth1 = pytest.mark.skipif(not ETTH1.is_file(), reason="shared ETTh1 not present")
needs_m4 = pytest.mark.skipif(not HOURLY.is_file(), reason="shared M4 Hourly not present")


@pytest.fixture
def isolated_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $CALF_DATA_DIR, no checkout data folder, the cache in ``tmp_path / "cache"``."""
    monkeypatch.delenv(paths.DATA_DIR_ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", None)
    monkeypatch.setenv(paths.CACHE_ENV_VAR, str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def hourly() -> tuple[dict, dict, dict]:
    if not HOURLY.is_file():
        pytest.skip("shared M4 Hourly not present")
    return (load_m4("Hourly", "train", DATA_DIR, download=False),
            load_m4("Hourly", "test", DATA_DIR, download=False), load_m4_naive2("Hourly", DATA_DIR))


# ---------------------------------------------------------------- directories and files


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CALF_FORECASTER_CACHE", str(tmp_path))
    assert paths.cache_dir() == tmp_path and paths.download_dir() == tmp_path / "data"
    assert prototypes.default_cache_dir() == tmp_path and prototypes.CACHE_ENV_VAR == paths.CACHE_ENV_VAR
    monkeypatch.delenv("CALF_FORECASTER_CACHE")
    assert paths.cache_dir() == Path.home() / ".cache" / "calf_forecaster"


def test_checkout_data_dir_is_shared_data_beside_the_repository() -> None:
    root = Path(paths.__file__).resolve().parents[1]
    assert paths.CHECKOUT_DATA_DIR == root.parent / "shared" / "data"


def test_search_order_explicit_then_env_then_checkout_then_cache(isolated_search_path,
                                                                  monkeypatch) -> None:
    explicit, env, checkout = (isolated_search_path / n for n in ("explicit", "env", "checkout"))
    cache = paths.download_dir()
    for folder in (explicit, env, checkout, cache):
        (folder / "ett").mkdir(parents=True)
        (folder / "ett" / "ETTh1.csv").write_text(folder.name)
    monkeypatch.setenv("CALF_DATA_DIR", str(env))
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", checkout)
    assert paths.data_search_path(explicit) == [explicit, env, checkout, cache]
    assert find_ett_file("ETTh1", explicit, download=False) == explicit / "ett" / "ETTh1.csv"
    assert find_ett_file("ETTh1", download=False) == env / "ett" / "ETTh1.csv"
    monkeypatch.delenv("CALF_DATA_DIR")
    assert find_ett_file("ETTh1", download=False) == checkout / "ett" / "ETTh1.csv"
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", isolated_search_path / "absent")
    assert paths.data_search_path() == [cache]  # an absent checkout folder is left out
    assert find_ett_file("ETTh1", download=False) == cache / "ett" / "ETTh1.csv"
    # the flat layout and the Time-Series-Library layout are found too
    flat, tsl = isolated_search_path / "flat", isolated_search_path / "tsl"
    flat.mkdir()
    (flat / "ETTh1.csv").write_text("flat")
    (tsl / "ETT-small").mkdir(parents=True)
    (tsl / "ETT-small" / "ETTh1.csv").write_text("tsl")
    assert find_ett_file("ETTh1", flat, download=False) == flat / "ETTh1.csv"
    assert find_ett_file("ETTh1", tsl, download=False) == tsl / "ETT-small" / "ETTh1.csv"


def test_missing_file_without_download_says_where_to_put_it(isolated_search_path) -> None:
    with pytest.raises(FileNotFoundError, match="ett/ETTh2.csv") as caught:
        find_ett_file("ETTh2", isolated_search_path, download=False)
    message = str(caught.value)
    assert "pass data_dir=... or set $CALF_DATA_DIR to a folder holding ett/ETTh2.csv" in message
    assert str(isolated_search_path) in message and str(paths.download_dir()) in message
    assert "curl -fL --create-dirs -o" in message and "download=True" in message
    assert "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh2.csv" in message
    with pytest.raises(FileNotFoundError, match="submission-Naive2.rar"):
        load_m4_naive2("Yearly", isolated_search_path)
    with pytest.raises(ValueError, match="`name`"):
        find_ett_file("ETTx", download=False)


def test_download_is_verified_and_atomic(isolated_search_path, caplog) -> None:
    source = isolated_search_path / "source.csv"
    source.write_text("date,OT\n2020-01-01 00:00:00,1.5\n")
    url, digest = source.as_uri(), sha256_of(source)
    target = paths.download_dir() / "toy" / "toy.csv"
    assert find_data_file("toy/toy.csv", url, digest) == target
    assert target.read_text() == source.read_text()
    assert find_data_file("toy/toy.csv", url, "0" * 64) == target  # found now, not re-downloaded

    with pytest.raises(FileNotFoundError, match="checksum mismatch") as caught:
        find_data_file("toy/bad.csv", url, "0" * 64)
    assert isinstance(caught.value.__cause__, ChecksumMismatchError)
    assert sorted(p.name for p in target.parent.iterdir()) == ["toy.csv"]  # no partial left

    with caplog.at_level(logging.WARNING, logger="calf_forecaster.datasets._files"):
        find_data_file("toy/unverified.csv", url, None)
    assert "unverified" in caplog.text and digest in caplog.text

    with pytest.raises(FileNotFoundError, match="download from .* failed"):
        find_data_file("toy/absent.csv", (isolated_search_path / "absent.csv").as_uri(), None)
    assert sorted(p.name for p in target.parent.iterdir()) == ["toy.csv", "unverified.csv"]


# ---------------------------------------------------------------- long-term registry and splits


def test_ett_split_is_the_standard_protocol() -> None:
    split = ett_split("ETTh1", seq_len=96)
    assert split.train == (0, 8640)
    assert split.validation == (8640 - 96, 11520) and split.test == (11520 - 96, 14400)
    assert ett_split("ETTm2", seq_len=96).test == (4 * 11520 - 96, 4 * 14400)
    minute = ett_split("ETTm1", seq_len=96)
    assert minute.train == (0, 4 * 8640)
    assert minute.validation == (4 * 8640 - 96, 4 * 11520)
    assert minute.test == (4 * 11520 - 96, 4 * 14400)
    assert long_term_split("ETTm1", 69680, 96) == minute
    with pytest.raises(ValueError, match="`name`"):
        ett_split("ETTx", 96)
    with pytest.raises(ValueError, match="`n_rows`"):
        long_term_split("ETTh1", 14000, 96)


def test_custom_split_on_ili() -> None:
    # n_train = int(966 * .7) = 676, n_test = int(966 * .2) = 193, n_val = 97
    split = long_term_split("ILI", 966, 36)
    assert split.train == (0, 676)
    assert split.validation == (676 - 36, 676 + 97)
    assert split.test == (966 - 193 - 36, 966)
    assert split == custom_split(966, 36) == LONG_TERM_DATASETS["ILI"].split()
    assert long_term_split("weather", 52696, 96).train == (0, 36887)
    with pytest.raises(ValueError, match="`seq_len`"):
        custom_split(50, 36)


def test_registry_holds_the_reference_recipe() -> None:
    assert set(LONG_TERM_DATASETS) == {"ETTh1", "ETTh2", "ETTm1", "ETTm2", "Weather", "ECL",
                                       "Traffic", "Exchange", "ILI"}
    recipe = {name: (e.batch_size, e.loss) for name, e in LONG_TERM_DATASETS.items()}
    assert recipe["ETTh1"] == recipe["ETTm2"] == (256, "l1")
    assert recipe["Weather"] == (64, "smooth_l1") and recipe["ECL"] == (32, "smooth_l1")
    assert recipe["Traffic"] == (8, "smooth_l1")
    assert LONG_TERM_DATASETS["ETTm2"].learning_rate == 1e-4
    assert LONG_TERM_DATASETS["ETTm1"].learning_rate == 5e-4
    ili = long_term_dataset("national_illness")
    assert ili.name == "ILI" and ili.seq_lens == (36, 104) and ili.pred_lens == (24, 36, 48, 60)
    assert long_term_dataset("electricity").relative_path == "electricity/electricity.csv"
    assert long_term_dataset("ETTh1").pred_lens == (96, 192, 336, 720)
    if (DATA_DIR / ili.relative_path).is_file():
        assert sha256_of(DATA_DIR / ili.relative_path) == ili.sha256
    with pytest.raises(ValueError, match="`name`"):
        long_term_dataset("solar")


def test_load_ett_from_a_data_directory() -> None:
    if not (DATA_DIR / "ett" / "ETTh1.csv").is_file():
        pytest.skip("shared data not present")
    table = load_ett("ETTh1", DATA_DIR, download=False)
    assert table.values.shape == (17420, 7) and table.columns[-1] == "OT"
    assert str(table.timestamps[0]) == "2016-07-01T00:00:00"


@needs_etth1
def test_etth1_test_split_keeps_every_window() -> None:
    table = load_long_term("ETTh1", DATA_DIR, download=False)
    start, stop = long_term_split("ETTh1", len(table.values), 96).test
    x, y = sliding_windows(table.values[start:stop], 96, 96)
    assert n_windows(stop - start, 96, 96) == len(x) == len(y) == 2785
    assert np.array_equal(y[-1], table.values[stop - 96:stop])  # the last target ends the split


def test_load_long_term_ili() -> None:
    if not (DATA_DIR / "ili" / "national_illness.csv").is_file():
        pytest.skip("shared ILI not present")
    table = load_long_term("ili", DATA_DIR, download=False)
    assert table.values.shape == (966, 7) and table.columns[-1] == "OT"
    assert str(table.timestamps[0]) == "2002-01-01T00:00:00"
    assert table.values[0, -1] == 176569.0


def test_read_csv_table_reads_unpadded_slash_dates(tmp_path) -> None:
    path = tmp_path / "exchange_rate.csv"
    path.write_text("date,0,OT\n1990/1/1 0:00,0.7855,0.5\n1990/1/2 13:05,0.7818,0.25\n")
    table = read_csv_table(path)
    assert [str(t) for t in table.timestamps] == ["1990-01-01T00:00:00", "1990-01-02T13:05:00"]
    assert table.columns == ("0", "OT") and table.values[1, 1] == 0.25
    path.write_text("date,OT\nyesterday,1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_csv_table(path)


def test_few_shot_window_counts_on_etth1() -> None:
    full = ett_split("ETTh1", 96)
    five = few_shot_split(full, 96, 5)
    assert five.train == (0, 523)  # (8640 - 96) * 5 // 100 + 96
    assert five.validation == full.validation and five.test == full.test
    rows = five.train[1]
    assert n_windows(rows, 96, 192) == 236 and n_windows(rows, 96, 336) == 92
    assert n_windows(rows, 96, 720) == 0
    assert few_shot_split(full, 96, 5, pred_len=336).train == (0, 523)
    with pytest.raises(ValueError, match="no training window for `pred_len`=720"):
        few_shot_split(full, 96, 5, pred_len=720)
    ten = few_shot_split(full, 96, 10, pred_len=96)
    assert ten.train == (0, 950) and n_windows(950, 96, 96) == 759  # 8544 * 10 // 100 + 96
    assert few_shot_split(full, 96, 100) == full
    with pytest.raises(ValueError, match="`percent`"):
        few_shot_split(full, 96, 0)


# ---------------------------------------------------------------- M4


@needs_m4
def test_m4_hourly_files(hourly) -> None:
    train, test, naive2 = hourly
    assert len(train) == len(test) == len(naive2) == M4_GROUPS["Hourly"].n_series == 414
    assert list(train)[:3] == ["H1", "H2", "H3"] and list(train) == list(test) == list(naive2)
    assert {len(v) for v in train.values()} == {700, 960}
    assert {len(v) for v in test.values()} == {len(v) for v in naive2.values()} == {48}
    assert train["H1"][:3].tolist() == [605.0, 586.0, 586.0]
    assert test["H1"][:2].tolist() == [619.0, 565.0]
    group = M4_GROUPS["Hourly"]
    assert sha256_of(HOURLY) == group.train_sha256
    assert sha256_of(DATA_DIR / "m4" / "Hourly-test.csv") == group.test_sha256
    assert sha256_of(DATA_DIR / "m4" / "Hourly-naive2.csv") == group.naive2_sha256
    assert group.url("train").endswith("M4-methods/master/Dataset/Train/Hourly-train.csv")
    assert (group.lookback, group.window_limit, group.seasonality) == (96, 480, 24)
    assert [M4_GROUPS[g].window_limit for g in ("Yearly", "Quarterly", "Monthly")] == [9, 12, 27]


@needs_m4
def test_m4_sampler_draws_cut_points_in_the_documented_range(hourly) -> None:
    train = hourly[0]
    series = train["H1"]  # 700 points
    assert len(series) == 700 and cut_point_range(700, 48, 10) == (220, 700)
    drawer = M4TrainingDataset.for_group("Hourly", {"H1": series}, seed=3)
    cuts = np.array([drawer.draw_cut(0) for _ in range(20000)])
    assert cuts.min() == 220 and cuts.max() == 699  # both ends of [max(1, T - 480), T) reached
    # items follow the same draws: a twin with the same seed reproduces each window
    twin = M4TrainingDataset.for_group("Hourly", {"H1": series}, seed=3)
    for cut in cuts[:300]:
        x, y, x_mask, y_mask = twin[0]
        assert x.shape == x_mask.shape == (96, 1) and y.shape == y_mask.shape == (48, 1)
        assert x.dtype == y.dtype == x_mask.dtype == y_mask.dtype == torch.float32
        expected = m4_window(series, int(cut), 96, 48)
        for got, want in zip((x, y, x_mask, y_mask), expected):
            assert np.array_equal(got[:, 0].numpy(), want)
        real = min(48, 700 - int(cut))  # target points inside the series
        assert y_mask[:real].all() and not y_mask[real:].any() and not y[real:].any()
        assert x_mask.all()  # cut >= 220 > L: never left-padded
        assert np.allclose(x[:, 0].numpy(), series[cut - 96:cut])
    # one item per series per epoch, fresh draws each epoch
    dataset = M4TrainingDataset.for_group("Hourly", train, seed=0)
    assert len(dataset) == 414
    first, second = dataset[5], dataset[5]
    assert not torch.equal(first[0], second[0]) or not torch.equal(first[1], second[1])
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))
    assert [tuple(t.shape) for t in batch] == [(8, 96, 1), (8, 48, 1), (8, 96, 1), (8, 48, 1)]


def test_m4_window_pads_a_short_series() -> None:
    series = np.arange(1.0, 11.0)  # 10 points
    x, y, x_mask, y_mask = m4_window(series, 4, seq_len=6, pred_len=8)
    assert x.tolist() == [0, 0, 1, 2, 3, 4] and x_mask.tolist() == [0, 0, 1, 1, 1, 1]
    assert y.tolist() == [5, 6, 7, 8, 9, 10, 0, 0] and y_mask.tolist() == [1] * 6 + [0, 0]
    dataset = M4TrainingDataset([series], pred_len=8, seq_len=12, history_size=10, seed=1)
    assert dataset.ranges == [(1, 10)]  # max(1, 10 - 80) = 1
    for _ in range(200):
        x, y, x_mask, y_mask = (t[:, 0].numpy() for t in dataset[0])
        n_history, n_future = int(x_mask.sum()), int(y_mask.sum())
        assert 1 <= n_history <= 9 and n_future == min(8, 10 - n_history)  # cut = n_history
        assert not x_mask[:12 - n_history].any() and not x[:12 - n_history].any()
        assert x[12 - n_history:].tolist() == series[:n_history].tolist()
        assert y[:n_future].tolist() == series[n_history:n_history + n_future].tolist()
        assert not y_mask[n_future:].any() and not y[n_future:].any()
    with pytest.raises(ValueError, match="series '0'"):
        M4TrainingDataset([np.array([1.0])], pred_len=8)


@needs_m4
def test_m4_holdout_and_test_inputs(hourly) -> None:
    train = hourly[0]
    fit, targets = m4_holdout(train, 48)
    assert list(fit) == list(targets) == list(train)
    for key, values in train.items():
        assert len(fit[key]) == len(values) - 48 and targets[key].shape == (48,)
        assert np.array_equal(np.concatenate([fit[key], targets[key]]), values)
    x, mask = m4_last_windows(train, 96)
    assert x.shape == mask.shape == (414, 96, 1) and x.dtype == np.float32 and mask.all()
    assert np.allclose(x[0, :, 0], train["H1"][-96:])
    short, short_mask = m4_last_windows([np.array([1.0, 2.0, 3.0])], 5)
    assert short[0, :, 0].tolist() == [0, 0, 1, 2, 3]
    assert short_mask[0, :, 0].tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="`pred_len`=48"):
        m4_holdout({"H0": np.ones(48)}, 48)
