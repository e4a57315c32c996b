"""Tests of the sktime adapter ``CALFForecaster``: sktime's own checks, workflows, bad input.

Every model here is a tiny randomly initialised GPT-2 built offline by
``CALFForecaster.get_test_params``; data are sktime's bundled datasets and ETTh1 from
``$CALF_DATA_DIR`` (default ``../shared/data``; ETTh1 tests skip without it).
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sktime")

import torch  # noqa: E402
from sktime.base import load  # noqa: E402
from sktime.datasets import load_airline, load_longley  # noqa: E402
from sktime.forecasting.base import ForecastingHorizon  # noqa: E402
from sktime.forecasting.model_evaluation import evaluate  # noqa: E402
from sktime.forecasting.model_selection import ForecastingGridSearchCV  # noqa: E402
from sktime.performance_metrics.forecasting import MeanAbsoluteError  # noqa: E402
from sktime.split import ExpandingWindowSplitter  # noqa: E402
from sktime.utils.estimator_checks import check_estimator, parametrize_with_checks  # noqa: E402

from calf_forecaster.sktime import CALFForecaster  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models, one thread


def tiny(**changes: object) -> CALFForecaster:
    """A fast CALFForecaster on the tiny offline GPT-2 of the first test parameter set."""
    params = {**CALFForecaster.get_test_params()[0], "validation_size": 0, "max_epochs": 2}
    params.update(changes)
    return CALFForecaster(**params)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a module's state."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def airline() -> pd.Series:
    return load_airline()


@pytest.fixture(scope="module")
def longley() -> pd.DataFrame:
    """Longley's six yearly macroeconomic columns (16 rows), one multivariate series."""
    y, X = load_longley()
    return pd.concat([X, y], axis=1)


@pytest.fixture(scope="module")
def ett(ett_h1: pd.DataFrame) -> pd.DataFrame:
    """The first 600 hours of ETTh1, all seven columns, with an hourly frequency."""
    return ett_h1.iloc[:600].asfreq("h")


# --------------------------------------------------------------------------- sktime's checks


@parametrize_with_checks(CALFForecaster)
def test_sktime_contract(obj, test_name):
    """Every check sktime 1.2 applies to forecasters, on both ``get_test_params`` sets."""
    check_estimator(obj, tests_to_run=test_name, raise_exceptions=True, verbose=False)


def test_tags_tell_the_truth():
    tags = CALFForecaster.get_class_tags()
    assert tags["capability:multivariate"] is True
    assert {"pd.DataFrame", "pd-multiindex", "pd_multiindex_hier"} <= set(tags["y_inner_mtype"])
    assert tags["requires-fh-in-fit"] is True
    assert tags["capability:insample"] is False
    assert tags["capability:pretrain"] is True
    assert tags["property:randomness"] == "derandomized"
    assert tags["capability:random_state"] is True
    assert "torch>=2.4" in tags["python_dependencies"]


def test_init_stores_parameters_untouched():
    kwargs = {"accelerator": "cpu"}
    targets = ["c_attn"]
    forecaster = CALFForecaster(trainer_kwargs=kwargs, lora_target_modules=targets, seq_len=7)
    assert forecaster.trainer_kwargs is kwargs and forecaster.lora_target_modules is targets
    assert forecaster.get_params()["seq_len"] == 7


def test_missing_sktime_raises_install_hint():
    code = (
        "import sys; sys.modules['sktime'] = None\n"
        "try:\n"
        "    import calf_forecaster.sktime\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT, check=True)
    assert 'pip install "calf-forecaster[sktime]"' in result.stdout


# --------------------------------------------------------------------------- workflows


def test_relative_and_absolute_fh_give_the_same_forecast(airline):
    y_train = airline.iloc[:-6]
    relative = tiny(seq_len=12).fit(y_train, fh=[1, 2, 3, 6]).predict()
    absolute_fh = ForecastingHorizon(airline.index[[-6, -5, -4, -1]], is_relative=False)
    absolute = tiny(seq_len=12).fit(y_train, fh=absolute_fh).predict()

    assert isinstance(relative, pd.Series) and relative.name == airline.name
    assert relative.index.equals(airline.index[[-6, -5, -4, -1]])
    pd.testing.assert_series_equal(relative, absolute)
    assert np.isfinite(relative.to_numpy()).all()


def test_multivariate_is_one_network_for_all_columns(longley):
    forecaster = tiny(seq_len=6).fit(longley, fh=[1, 2])
    y_pred = forecaster.predict()
    assert list(y_pred.columns) == list(longley.columns)
    assert y_pred.index.equals(pd.period_range(longley.index[-1] + 1, periods=2, freq="Y"))
    assert not hasattr(forecaster, "forecasters_")  # not vectorised over columns
    assert forecaster.columns_.equals(longley.columns)


def test_constant_series_is_forecast_as_that_constant():
    """Instance normalisation maps a constant window to itself (up to sqrt(1e-5) x head output)."""
    index = pd.period_range("2000-01", periods=40, freq="M")
    y = pd.Series(1000.0, index=index)
    y_pred = tiny(seq_len=8, scale=False).fit(y, fh=[1, 2, 3]).predict()
    np.testing.assert_allclose(y_pred.to_numpy(), 1000.0, atol=0.5)


def test_update_moves_the_cutoff_and_the_context(airline):
    y_train, y_new = airline.iloc[:-12], airline.iloc[-12:-6]
    forecaster = tiny(seq_len=12).fit(y_train, fh=[1, 2, 3])
    before = forecaster.predict()
    trained = weights(forecaster.network_)

    forecaster.update(y_new, update_params=False)
    after = forecaster.predict()
    assert forecaster.cutoff[0] == y_new.index[-1]
    assert after.index.equals(airline.index[-6:-3])
    assert same_weights(trained, weights(forecaster.network_))  # only the context moved
    assert not np.allclose(after.to_numpy(), before.to_numpy())

    forecaster.update(airline.iloc[-6:-3], update_params=True)
    assert forecaster.cutoff[0] == airline.index[-4]
    assert not same_weights(trained, weights(forecaster.network_))  # training continued
    assert forecaster.predict().index.equals(airline.index[-3:])


def test_grid_search_over_seq_len_and_learning_rate(airline):
    cv = ExpandingWindowSplitter(fh=[1, 2, 3], initial_window=108, step_length=18)
    search = ForecastingGridSearchCV(
        tiny(max_epochs=1),
        cv=cv,
        param_grid={"seq_len": [12, 24], "learning_rate": [1e-3, 1e-2]},
        scoring=MeanAbsoluteError(),
    )
    search.fit(airline, fh=[1, 2, 3])
    assert len(search.cv_results_) == 4
    assert search.best_params_["seq_len"] in (12, 24)
    assert search.best_params_["learning_rate"] in (1e-3, 1e-2)
    assert search.best_forecaster_.seq_len == search.best_params_["seq_len"]
    assert np.isfinite(search.predict().to_numpy()).all()


@pytest.mark.parametrize("strategy", ["refit", "update"])
def test_evaluate(airline, strategy):
    cv = ExpandingWindowSplitter(fh=[1, 2, 3], initial_window=120, step_length=12)
    results = evaluate(tiny(seq_len=12, max_epochs=1), cv=cv, y=airline, strategy=strategy,
                       scoring=MeanAbsoluteError())
    assert len(results) == 2
    assert np.isfinite(results["test_MeanAbsoluteError"]).all()


def test_panel_is_fitted_as_one_global_model(longley):
    """Longley's six columns as six univariate series of a pd-multiindex panel."""
    panel = longley.melt(ignore_index=False, var_name="series", value_name="value")
    panel = panel.reset_index(names="year").set_index(["series", "year"]).sort_index()
    forecaster = tiny(seq_len=6).fit(panel, fh=[1, 2, 3])
    y_pred = forecaster.predict()

    assert not hasattr(forecaster, "forecasters_")  # one network, no per-series clones
    assert forecaster.n_train_windows_ == 6 * (16 - 6 - 3 + 1)
    assert y_pred.index.nlevels == 2
    assert set(y_pred.index.get_level_values(0)) == set(longley.columns)
    for _, frame in y_pred.groupby(level=0):
        times = frame.index.get_level_values(1)
        assert list(times) == list(pd.period_range("1963", periods=3, freq="Y"))
    assert np.isfinite(y_pred.to_numpy()).all()


def test_unequal_panel_forecasts_each_series_from_its_own_end(ett):
    """ETTh1 chunks ending at different hours: every series continues from its own end."""
    chunks = {"a": ett.iloc[:200], "b": ett.iloc[200:420], "c": ett.iloc[420:600]}
    panel = pd.concat(chunks, names=["chunk", "date"])
    forecaster = tiny(seq_len=24).fit(panel, fh=list(range(1, 7)))
    y_pred = forecaster.predict()
    assert list(y_pred.columns) == list(ett.columns)
    for name, chunk in chunks.items():
        times = y_pred.loc[name].index
        assert list(times) == list(pd.date_range(chunk.index[-1], periods=7, freq="h")[1:])


def test_multivariate_ett_with_absolute_fh(ett):
    y_train = ett.iloc[:-12]
    fh = ForecastingHorizon(ett.index[-12:], is_relative=False)
    forecaster = tiny(seq_len=48, max_epochs=1).fit(y_train, fh=fh)
    y_pred = forecaster.predict()
    assert y_pred.shape == (12, 7) and y_pred.index.equals(ett.index[-12:])
    assert forecaster.pred_len_ == 12


def test_pretrain_on_a_panel_then_fit_one_new_series(longley, airline):
    panel = longley.melt(ignore_index=False, var_name="series", value_name="value")
    panel = panel.reset_index(names="year").set_index(["series", "year"]).sort_index()
    forecaster = tiny(seq_len=6)
    forecaster.pretrain(panel, fh=[1, 2, 3])
    assert forecaster.state == "pretrained"
    assert forecaster.pretrain_pred_len_ == 3 and forecaster.n_pretrain_instances_ == 6
    pretrained = weights(forecaster.pretrained_network_)

    y_pred = forecaster.fit(airline, fh=[1, 2]).predict()
    assert forecaster.state == "fitted"
    assert y_pred.index.equals(pd.period_range("1961-01", periods=2, freq="M"))
    assert forecaster.network_ is not forecaster.pretrained_network_
    assert same_weights(pretrained, weights(forecaster.pretrained_network_))  # kept intact
    assert forecaster.pred_len_ == 3  # the pretrained head is kept

    cold = tiny(seq_len=6).fit(airline, fh=[1, 2]).predict()
    assert not np.allclose(cold.to_numpy(), y_pred.to_numpy())  # fine-tuning started elsewhere

    clone = forecaster.clone()  # sktime keeps pretrained state in clones (e.g. grid search)
    assert clone.state == "pretrained"
    assert same_weights(pretrained, weights(clone.pretrained_network_))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_via_trainer_kwargs(airline):
    gpu = tiny(seq_len=12, trainer_kwargs={"accelerator": "gpu", "devices": 1,
                                           "enable_progress_bar": False})
    y_pred = gpu.fit(airline, fh=[1, 2, 3]).predict()
    assert np.isfinite(y_pred.to_numpy()).all()
    assert next(gpu.network_.parameters()).device.type == "cpu"  # stored portable
    restored = pickle.loads(pickle.dumps(gpu))
    pd.testing.assert_series_equal(restored.predict(), y_pred, rtol=1e-5)


def test_save_load_and_pickle_give_identical_forecasts(longley, tmp_path):
    forecaster = tiny(seq_len=6).fit(longley, fh=[1, 2])
    expected = forecaster.predict()

    forecaster.save(tmp_path / "calf")
    from_zip = load(tmp_path / "calf.zip")
    pd.testing.assert_frame_equal(from_zip.predict(), expected)
    via_class = CALFForecaster.load_from_path(tmp_path / "calf.zip")
    pd.testing.assert_frame_equal(via_class.predict(), expected)

    in_memory = load(forecaster.save())
    pd.testing.assert_frame_equal(in_memory.predict(), expected)
    pickled = pickle.loads(pickle.dumps(forecaster))
    pd.testing.assert_frame_equal(pickled.predict(), expected)
    pd.testing.assert_frame_equal(copy.deepcopy(forecaster).predict(), expected)

    # a loaded model keeps working: update and predict further
    pickled.update(longley.iloc[-2:] + 1.0, update_params=False)
    assert np.isfinite(pickled.predict().to_numpy()).all()


def test_pickle_holds_the_portable_weights_only(longley):
    """A pickle stores the saved-model files (safetensors + json), not the backbone module."""
    forecaster = tiny(seq_len=6, pretrained=True).fit(longley, fh=[1])
    saved = forecaster.pipeline_.__getstate__()["network"]
    assert sorted(saved) == ["calf.json", "weights.safetensors"]
    assert "branches.backbone.wte.weight" not in forecaster.network_.portable_state_dict()


def test_unpickling_needs_the_backbone(airline, tmp_path):
    """Pickles hold no backbone weights: a vanished backbone is named, not silently replaced."""
    import shutil

    from calf_forecaster.backbone import BackboneNotFoundError

    backbone = shutil.copytree(CALFForecaster.get_test_params()[0]["backbone"], tmp_path / "gpt2")
    forecaster = tiny(seq_len=12, backbone=str(backbone)).fit(airline, fh=[1])
    serialised = pickle.dumps(forecaster)
    shutil.rmtree(backbone)
    with pytest.raises(BackboneNotFoundError, match="gpt2"):
        pickle.loads(serialised)


def test_same_random_state_gives_the_same_forecast(airline):
    first = tiny(seq_len=12, random_state=3).fit(airline, fh=[1, 2]).predict()
    second = tiny(seq_len=12, random_state=3).fit(airline, fh=[1, 2]).predict()
    other = tiny(seq_len=12, random_state=4).fit(airline, fh=[1, 2]).predict()
    pd.testing.assert_series_equal(first, second)
    assert not np.allclose(first.to_numpy(), other.to_numpy())


# --------------------------------------------------------------------------- bad input


def test_nan_is_refused(airline):
    y = airline.copy()
    y.iloc[10] = np.nan
    with pytest.raises(ValueError, match="missing data"):
        tiny(seq_len=12).fit(y, fh=[1])


def test_infinite_value_is_refused(airline):
    y = airline.copy()
    y.iloc[10] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        tiny(seq_len=12).fit(y, fh=[1])


def test_non_numeric_columns_are_refused(longley):
    strings = longley.assign(GNP=longley["GNP"].astype(str))
    with pytest.raises(TypeError, match="categorical"):  # sktime's own check
        tiny(seq_len=4).fit(strings, fh=[1])
    booleans = longley.assign(GNP=longley["GNP"] > longley["GNP"].median())
    with pytest.raises(TypeError, match="numeric"):
        tiny(seq_len=4).fit(booleans, fh=[1])


def test_too_short_series_are_refused_not_padded(airline, longley):
    with pytest.raises(ValueError, match="does not pad short series"):
        tiny(seq_len=12).fit(airline.iloc[:14], fh=[1, 2, 3])
    panel = pd.concat({"long": longley, "short": longley.iloc[:5]}, names=["series", "year"])
    with pytest.raises(ValueError, match=r"series 'short'.* has 5 time points"):
        tiny(seq_len=4).fit(panel, fh=[1, 2])


def test_fh_beyond_what_was_fitted_is_refused(airline, longley):
    forecaster = tiny(seq_len=12).fit(airline, fh=[1, 2, 3])
    with pytest.raises(ValueError, match="different forecasting horizon"):
        forecaster.predict(fh=[1, 2, 3, 4, 5])

    panel = pd.concat({"a": longley, "b": longley * 2}, names=["series", "year"])
    pretrained = tiny(seq_len=4).pretrain(panel, fh=[1, 2])
    with pytest.raises(ValueError, match="beyond the horizon of 2 steps"):
        pretrained.fit(longley, fh=[1, 2, 3])


def test_in_sample_fh_is_refused(airline):
    with pytest.raises(NotImplementedError, match="in-sample"):
        tiny(seq_len=12).fit(airline, fh=[-1, 1])


def test_update_with_other_columns_is_refused_and_changes_nothing(longley):
    forecaster = tiny(seq_len=6).fit(longley.iloc[:-2], fh=[1])
    cutoff = forecaster.cutoff
    expected = forecaster.predict()
    with pytest.raises(ValueError, match="fitted on columns"):
        forecaster.update(longley.iloc[-2:, ::-1])  # same columns, other order
    with pytest.raises(ValueError, match="fitted on columns"):
        forecaster.update(longley.iloc[-2:, :3])
    with pytest.raises(ValueError, match="fitted on columns"):
        forecaster.update_predict_single(longley.iloc[-2:].rename(columns={"GNP": "gnp"}))
    with pytest.raises(ValueError, match="NaN or infinite"):
        forecaster.update(longley.iloc[-2:].replace(longley.iloc[-1, 0], np.inf))
    assert forecaster.cutoff.equals(cutoff)
    pd.testing.assert_frame_equal(forecaster.predict(), expected)


def test_update_adding_a_too_short_series_to_a_panel_is_refused(longley):
    panel = pd.concat({"a": longley, "b": longley * 2}, names=["series", "year"])
    forecaster = tiny(seq_len=4).fit(panel, fh=[1])
    newcomer = pd.concat({"c": longley.iloc[-2:]}, names=["series", "year"])
    with pytest.raises(ValueError, match="series 'c'.* would have 2 time points"):
        forecaster.update(newcomer, update_params=False)
    assert forecaster.cutoff[0] == longley.index[-1]


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"llm_mode": "gpt"}, ValueError, "llm_mode"),
        ({"loss": "huber"}, ValueError, "loss"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"validation_size": 1.5}, ValueError, "validation_size"),
        ({"max_epochs": -1}, ValueError, "max_epochs"),
        ({"random_state": "seed"}, TypeError, "random_state"),
    ],
)
def test_invalid_parameters_are_named_at_fit(airline, change, error, match):
    forecaster = tiny(seq_len=12, **change)  # construction never fails
    with pytest.raises(error, match=match):
        forecaster.fit(airline, fh=[1])
