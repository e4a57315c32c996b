"""darts adapter: ``CALFModel`` through darts' own workflows, with tiny offline backbones.

Every backbone here is a 2-block, 32-wide GPT-2 saved with ``save_pretrained`` (conftest's
``tiny_gpt2``, or one like it), trained for a few epochs at most on short series, on the CPU
unless a test says otherwise. ETTh1 comes from conftest's ``ett_h1`` (``$CALF_DATA_DIR``,
default ``../shared/data``; skipped when absent).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("darts")

from darts import TimeSeries  # noqa: E402
from darts.dataprocessing.transformers import Scaler  # noqa: E402
from darts.metrics import mae, mse  # noqa: E402
from darts.utils.data.torch_datasets.utils import ModuleStage, TorchTrainingBatch  # noqa: E402
from darts.utils.likelihood_models.torch import GaussianLikelihood, QuantileRegression  # noqa: E402
from darts.utils.serialization import get_safe_globals  # noqa: E402

from calf_forecaster.backbone import BackboneNotFoundError  # noqa: E402
from calf_forecaster.config import TrainingConfig  # noqa: E402
from calf_forecaster.darts import CALFModel  # noqa: E402
from calf_forecaster.losses import calf_loss  # noqa: E402
from calf_forecaster.persistence import BackboneMismatchError  # noqa: E402
from calf_forecaster.testing import save_tiny_gpt2  # noqa: E402
from calf_forecaster.training import build_optimizer  # noqa: E402

ICL, OCL = 12, 6  # input / output chunk lengths of every test model
CPU_TRAINER = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False,
               "logger": False}
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _module_environment(tmp_path_factory: pytest.TempPathFactory):
    """One torch thread (fastest for tiny models, and immune to oversubscribed CPUs), and the
    prototype cache of conftest already for the module-scoped fixtures below."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALF_FORECASTER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield
    torch.set_num_threads(threads)


def make_series(length: int = 96, n_components: int = 2, seed: int = 0,
                dtype: type = np.float32, start: str = "2021-01-01", prefix: str = "c") -> TimeSeries:
    """Noisy daily-cycle sines with trends, one column per component, hourly index."""
    rng = np.random.default_rng(seed)
    steps = np.arange(length)
    values = np.stack([np.sin(2 * np.pi * steps / 12 + k) + 0.2 * k * steps / length
                       + 0.05 * rng.standard_normal(length) for k in range(n_components)], axis=1)
    return TimeSeries.from_times_and_values(
        pd.date_range(start, periods=length, freq="h"), values.astype(dtype),
        columns=[f"{prefix}{k}" for k in range(n_components)])


def tiny_kwargs(backbone: Path | str, **overrides: object) -> dict[str, object]:
    """Constructor arguments of a tiny, fast, seeded CALFModel on the CPU."""
    kwargs: dict[str, object] = {
        "input_chunk_length": ICL, "output_chunk_length": OCL, "backbone": str(backbone),
        "n_layers": 2, "n_prototypes": 8, "n_heads": 4, "encoder_ff_dim": 32, "batch_size": 64,
        "n_epochs": 1, "random_state": 0, "pl_trainer_kwargs": dict(CPU_TRAINER),
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture(scope="module")
def fitted(tiny_gpt2: Path) -> tuple[CALFModel, TimeSeries, dict[str, torch.Tensor]]:
    """One model fitted on one bivariate float32 series (predict-only tests share it), and the
    metrics its training logged."""
    series = make_series()
    model = CALFModel(**tiny_kwargs(tiny_gpt2))
    model.fit(series)
    return model, series, dict(model.trainer.callback_metrics)


# ---------------------------------------------------------------------- construction


def test_missing_darts_gives_the_install_hint() -> None:
    code = ("import sys\nsys.modules['darts'] = None\n"
            "try:\n    import calf_forecaster.darts\nexcept ImportError as error:\n"
            "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=REPO_ROOT, check=True)
    assert 'pip install "calf-forecaster[darts]"' in result.stdout


def test_the_class_is_registered_for_safe_loading() -> None:
    assert CALFModel in get_safe_globals()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"llm_mode": "gpt"}, "llm_mode"),
    ({"loss": "huber"}, "loss"),
    ({"feature_learning_rate": 0.0}, "feature_learning_rate"),
    ({"cosine_t_max": 0}, "cosine_t_max"),
    ({"likelihood": GaussianLikelihood()}, "likelihood"),
])
def test_invalid_settings_are_refused_on_construction(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CALFModel(**tiny_kwargs("unused-backbone", **overrides))


# ---------------------------------------------------------------------- fit and predict


def test_predict_below_at_and_above_output_chunk_length(fitted) -> None:
    model, series, _ = fitted
    at = model.predict(OCL)
    below = model.predict(OCL - 2)
    above = model.predict(2 * OCL + 3)  # auto-regressive
    assert (len(below), len(at), len(above)) == (OCL - 2, OCL, 2 * OCL + 3)
    for forecast in (below, at, above):
        assert forecast.start_time() == series.end_time() + series.freq
        assert list(forecast.components) == list(series.components)
        assert np.isfinite(forecast.values()).all()
    np.testing.assert_array_equal(below.values(), at.values()[:OCL - 2])
    np.testing.assert_array_equal(above.values()[:OCL], at.values())


def test_fit_on_a_list_of_series_forecasts_each(tiny_gpt2) -> None:
    first, second = make_series(80, seed=1), make_series(100, seed=2, start="2022-03-01")
    model = CALFModel(**tiny_kwargs(tiny_gpt2))
    model.fit([first, second])
    forecasts = model.predict(OCL, series=[first, second])
    assert len(forecasts) == 2
    for forecast, series in zip(forecasts, (first, second)):
        assert forecast.start_time() == series.end_time() + series.freq
        assert forecast.n_components == 2 and np.isfinite(forecast.values()).all()
    with pytest.raises(ValueError):
        model.predict(OCL)  # trained on several series: darts asks which one


def test_training_learns_a_daily_cycle(tiny_gpt2) -> None:
    """15 epochs on a noisy 12-step cycle forecast it far better than a single epoch does."""
    series = make_series(240, n_components=1)
    errors = {}
    for epochs in (1, 15):
        model = CALFModel(**tiny_kwargs(tiny_gpt2, n_epochs=epochs, batch_size=32,
                                        optimizer_kwargs={"lr": 3e-3}))
        model.fit(series[:192])
        errors[epochs] = model.backtest(series, start=192, start_format="position",
                                        forecast_horizon=OCL, stride=OCL, retrain=False,
                                        metric=mae, last_points_only=False, verbose=False)
    assert errors[15] < 0.2 < errors[1]  # the noise alone costs about 0.04


def test_training_loss_adds_the_distillation_terms(fitted, monkeypatch) -> None:
    model, _, metrics = fitted
    module = model.model
    assert {"train_loss", "train_loss_output", "train_loss_feature"} <= set(metrics)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)  # outside a trainer loop
    generator = torch.Generator().manual_seed(0)
    batch = TorchTrainingBatch(past_target=torch.randn(4, ICL, 2, generator=generator),
                               future_target=torch.randn(4, OCL, 2, generator=generator))
    module.eval()  # no dropout: the two forward passes below see the same network
    train_output = module(batch.to_module_input(ModuleStage.TRAIN))
    loss = module._compute_loss(train_output, batch.future_target, module.train_criterion, None)
    supervised = torch.nn.L1Loss()(train_output.prediction.squeeze(-1), batch.future_target)
    expected = calf_loss(train_output.calf, batch.future_target, module.training_config, supervised)
    torch.testing.assert_close(loss, expected.total)
    assert expected.output > 0 and expected.feature > 0 and loss > supervised

    val_output = module(batch.to_module_input(ModuleStage.VALIDATE))
    assert val_output.calf is None  # no textual branch outside training steps
    val_loss = module._compute_loss(val_output, batch.future_target, module.val_criterion, None)
    torch.testing.assert_close(val_loss, supervised)


def test_optimizer_follows_calfs_recipe(fitted) -> None:
    module = fitted[0].model
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "epoch"
    features = {id(p) for p in module.calf.feature_projection_parameters()}
    main_group, feature_group = optimizer.param_groups
    assert {id(p) for p in feature_group["params"]} == features
    assert {id(p) for p in main_group["params"]} == {
        id(p) for p in module.calf.main_parameters()}
    core_optimizer, core_scheduler = build_optimizer(module.calf, TrainingConfig())
    for _ in range(25):  # past T_max=20: the closed form keeps the reference's periodic cosine
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
            [g["lr"] for g in core_optimizer.param_groups], rel=1e-12)
        for opt, sched in ((optimizer, scheduler), (core_optimizer, core_scheduler)):
            opt.step()
            sched.step()
    assert feature_group["lr"] == 1e-4


def test_user_optimizer_settings_and_scheduler(tiny_gpt2) -> None:
    model = CALFModel(**tiny_kwargs(
        tiny_gpt2, n_epochs=2, optimizer_kwargs={"lr": 1e-3},
        lr_scheduler_cls=torch.optim.lr_scheduler.StepLR,
        lr_scheduler_kwargs={"step_size": 1, "gamma": 0.5}))
    model.fit(make_series(60))
    optimizer = model.trainer.optimizers[0]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2.5e-4, 2.5e-5])


# ---------------------------------------------------------------------- covariates


def test_past_covariates_are_tokens_before_the_targets(tiny_gpt2) -> None:
    series = make_series(96)
    covariates = make_series(96 + OCL, n_components=3, seed=5, prefix="x")
    model = CALFModel(**tiny_kwargs(tiny_gpt2))
    model.fit(series, past_covariates=covariates)
    seen: list[torch.Tensor] = []
    handle = model.model.calf.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone()))
    try:
        forecast = model.predict(OCL)
    finally:
        handle.remove()
    x = seen[0].numpy()  # (1, L, M)
    np.testing.assert_array_equal(x[0, :, :3], covariates.values()[96 - ICL:96])  # first
    np.testing.assert_array_equal(x[0, :, 3:], series.values()[-ICL:])  # targets last
    assert list(forecast.components) == list(series.components)  # only targets forecast

    shuffled = covariates.with_values(
        np.random.default_rng(0).permutation(covariates.values()))
    changed = model.predict(OCL, series=series, past_covariates=shuffled)
    assert not np.allclose(changed.values(), forecast.values())  # the targets see them
    longer = model.predict(OCL + 3, series=series[:-3], past_covariates=covariates)
    assert len(longer) == OCL + 3  # auto-regression consumes future past covariates


def test_future_and_static_covariates_are_refused(fitted, tiny_gpt2) -> None:
    model, series, _ = fitted
    future = make_series(96 + OCL, n_components=1, prefix="f")
    with pytest.raises(ValueError, match="future_covariates"):
        CALFModel(**tiny_kwargs(tiny_gpt2)).fit(series, future_covariates=future)
    assert not model.supports_future_covariates and not model.supports_static_covariates

    static = series.with_static_covariates(pd.DataFrame({"site": [3.0]}))
    with pytest.raises(ValueError, match="`series` carries static covariates"):
        CALFModel(**tiny_kwargs(tiny_gpt2)).fit(static)
    with pytest.raises(ValueError, match="`series` carries static covariates"):
        CALFModel(**tiny_kwargs(tiny_gpt2)).fit([series, static])


# ---------------------------------------------------------------------- probabilistic


def test_quantile_regression_samples_and_parameters(tiny_gpt2) -> None:
    quantiles = [0.1, 0.5, 0.9]
    series = make_series()
    model = CALFModel(**tiny_kwargs(tiny_gpt2, likelihood=QuantileRegression(quantiles)))
    model.fit(series)
    assert model.model.calf.head.out_features == len(quantiles) * OCL
    samples = model.predict(OCL, num_samples=40)
    assert samples.n_samples == 40 and np.isfinite(samples.all_values()).all()
    assert samples.all_values().std(axis=2).mean() > 0
    parameters = model.predict(OCL, predict_likelihood_parameters=True)
    assert list(parameters.components) == [
        f"{c}_q{q:.3f}" for c in series.components for q in quantiles]
    hist = model.historical_forecasts(series, start=len(series) - OCL, start_format="position",
                                      forecast_horizon=OCL, retrain=False, num_samples=10,
                                      last_points_only=False, verbose=False)
    assert hist[0].n_samples == 10


def test_a_deterministic_model_refuses_samples(fitted) -> None:
    with pytest.raises(ValueError):
        fitted[0].predict(OCL, num_samples=5)


# ---------------------------------------------------------------------- variants


@pytest.mark.parametrize("overrides", [
    {"llm_mode": "none"},
    {"llm_mode": "attention"},
    {"llm_mode": "transformer"},
    {"pretrained": False},
    {"use_reversible_instance_norm": True},
    {"loss": "mse", "output_chunk_shift": 2},
    {"add_encoders": {"cyclic": {"past": ["hour"]}}},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()).replace(" ", ""))
def test_ablations_and_darts_options_fit_and_predict(tiny_gpt2, overrides) -> None:
    series = make_series(72)
    model = CALFModel(**tiny_kwargs(tiny_gpt2, **overrides))
    model.fit(series, sample_weight="linear")
    forecast = model.predict(OCL)
    assert len(forecast) == OCL and np.isfinite(forecast.values()).all()
    if "add_encoders" in overrides:  # encoded covariates are tokens too: sin and cos of the hour
        assert model.model.train_sample_shape["past_covariates"] == (ICL, 2)
    shift = overrides.get("output_chunk_shift", 0)
    assert forecast.start_time() == series.end_time() + (1 + shift) * series.freq


def test_float32_and_float64_series(fitted, tiny_gpt2) -> None:
    model32, _, _ = fitted
    assert model32.predict(OCL).dtype == np.float32
    series64 = make_series(dtype=np.float64)
    model64 = CALFModel(**tiny_kwargs(tiny_gpt2))
    model64.fit(series64)
    forecast = model64.predict(OCL)
    assert forecast.dtype == np.float64
    assert next(model64.model.calf.parameters()).dtype == torch.float64
    np.testing.assert_allclose(forecast.values(), model32.predict(OCL).values(), atol=1e-3)


def test_inputs_are_not_mutated(tiny_gpt2) -> None:
    series = make_series()
    covariates = make_series(96 + OCL, n_components=2, seed=3, prefix="x")
    kwargs = tiny_kwargs(tiny_gpt2, optimizer_kwargs={"lr": 1e-3})
    before = (series.copy(), covariates.copy(), copy.deepcopy(kwargs))
    model = CALFModel(**kwargs)
    model.fit(series, past_covariates=covariates)
    model.predict(OCL + 2, series=series, past_covariates=covariates)
    model.historical_forecasts(series, past_covariates=covariates, start=80,
                               start_format="position", forecast_horizon=OCL, retrain=False,
                               verbose=False)
    assert series == before[0] and covariates == before[1]
    assert kwargs == before[2]


def test_gpu_via_pl_trainer_kwargs(tiny_gpt2, tmp_path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    series = make_series()
    model = CALFModel(**tiny_kwargs(tiny_gpt2, pl_trainer_kwargs={
        **CPU_TRAINER, "accelerator": "gpu", "devices": 1}))
    model.fit(series)
    forecast = model.predict(OCL)
    assert next(model.model.parameters()).device.type == "cuda"
    path = str(tmp_path / "gpu.pt")
    model.save(path)
    loaded = CALFModel.load(path, map_location="cpu", pl_trainer_kwargs=dict(CPU_TRAINER))
    np.testing.assert_allclose(loaded.predict(OCL).values(), forecast.values(),
                               rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- backtesting on ETTh1


@pytest.fixture(scope="module")
def etth1_series(ett_h1) -> tuple[TimeSeries, int]:
    """The first 180 hours of ETTh1 (7 columns), scaled on the first 150; forecasts from 150."""
    series = TimeSeries.from_dataframe(ett_h1.iloc[:180].astype(np.float32))
    start = 150
    return Scaler().fit(series[:start]).transform(series), start


@pytest.mark.parametrize("retrain", [False, True])
def test_historical_forecasts_and_backtest_on_etth1(tiny_gpt2, etth1_series, retrain) -> None:
    series, start = etth1_series
    model = CALFModel(**tiny_kwargs(tiny_gpt2))
    if not retrain:
        model.fit(series[:start])
    forecasts = model.historical_forecasts(
        series, start=start, start_format="position", forecast_horizon=OCL, stride=2 * OCL,
        retrain=retrain, last_points_only=False, verbose=False)
    assert [f.start_time() for f in forecasts] == [
        series.time_index[start + i * 2 * OCL] for i in range(len(forecasts))]
    assert len(forecasts) == 3 and all(f.n_components == 7 for f in forecasts)
    # the first forecast is the one a model fitted on the same history predicts
    reference = model if not retrain else CALFModel(**tiny_kwargs(tiny_gpt2)).fit(
        series[:start])
    np.testing.assert_allclose(forecasts[0].values(),
                               reference.predict(OCL, series=series[:start]).values(),
                               rtol=1e-5, atol=1e-6)
    errors = model.backtest(series, historical_forecasts=forecasts, metric=[mse, mae],
                            last_points_only=False)
    assert np.isfinite(errors).all() and errors.shape == (2,)


# ---------------------------------------------------------------------- saving and loading


@pytest.mark.parametrize("clean", [False, True])
def test_save_and_load_give_identical_predictions(fitted, tmp_path, clean) -> None:
    model, series, _ = fitted
    path = str(tmp_path / "calf.pt")
    model.save(path, clean=clean)
    # safe loading, no trusted=True; a clean save drops the trainer settings: pass them again
    loaded = CALFModel.load(path, pl_trainer_kwargs=dict(CPU_TRAINER) if clean else None)
    np.testing.assert_array_equal(loaded.predict(OCL, series=series).values(),
                                  model.predict(OCL, series=series).values())
    if clean:
        with pytest.raises(ValueError):
            loaded.predict(OCL)  # a clean save keeps no training series
    else:
        np.testing.assert_array_equal(loaded.predict(OCL).values(), model.predict(OCL).values())
    frozen = {f"calf.{key}" for key in model.model.calf.backbone_state_keys}
    saved = torch.load(path + ".ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert frozen and not frozen & set(saved)  # the pre-trained backbone is not copied


@pytest.mark.parametrize("enable_finetuning", [True, {"unfreeze": ["calf.head.*"]}],
                         ids=["everything", "head-only"])
def test_darts_finetuning_patterns_and_saving(tiny_gpt2, tmp_path, enable_finetuning) -> None:
    series = make_series(60)
    model = CALFModel(**tiny_kwargs(tiny_gpt2, enable_finetuning=enable_finetuning))
    # the network exactly as fit builds it (same seed), before darts applies enable_finetuning
    initial = model._create_model(train_sample=None)
    policy = {name for name, p in initial.named_parameters() if p.requires_grad}
    before = {name: p.detach().clone() for name, p in initial.named_parameters()}
    model.fit(series)
    trainable = {name for name, p in model.model.named_parameters() if p.requires_grad}
    changed = {name for name, p in model.model.named_parameters()
               if not torch.equal(p.detach(), before[name])}
    if enable_finetuning is True:
        assert trainable == set(before) > policy  # the frozen backbone weights train too
        assert changed & {f"calf.{key}" for key in model.model.calf.backbone_state_keys}
    else:
        assert trainable == {"calf.head.weight", "calf.head.bias"} == changed
    path = str(tmp_path / "finetuned.pt")
    model.save(path)
    np.testing.assert_array_equal(CALFModel.load(path).predict(OCL).values(),
                                  model.predict(OCL).values())


def test_load_on_cpu_a_model_trained_elsewhere(tiny_gpt2, tmp_path) -> None:
    """Another process trains (on a GPU where there is one) with the backbone in a directory
    that is gone when this one loads the clean save on the CPU from the backbone's new home."""
    elsewhere = shutil.copytree(tiny_gpt2, tmp_path / "elsewhere-gpt2")
    series = make_series()
    (tmp_path / "series.json").write_text(series.to_json())
    kwargs = tiny_kwargs(elsewhere)
    script = textwrap.dedent(f"""
        import json, numpy as np, torch
        from darts import TimeSeries
        from calf_forecaster.darts import CALFModel
        kwargs = json.loads({json.dumps(kwargs)!r})
        kwargs["pl_trainer_kwargs"]["accelerator"] = "gpu" if torch.cuda.is_available() else "cpu"
        series = TimeSeries.from_json(open({str(tmp_path / "series.json")!r}).read())
        model = CALFModel(**kwargs)
        model.fit(series)
        model.save({str(tmp_path / "model.pt")!r}, clean=True)
        np.save({str(tmp_path / "expected.npy")!r}, model.predict({OCL}, series=series).values())
    """)
    result = subprocess.run([sys.executable, "-c", script], timeout=300, cwd=REPO_ROOT,
                            capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.rmtree(elsewhere)
    path = str(tmp_path / "model.pt")
    with pytest.raises(BackboneNotFoundError):
        CALFModel.load(path, map_location="cpu")
    loaded = CALFModel.load(path, map_location="cpu", backbone=str(tiny_gpt2),
                            pl_trainer_kwargs=dict(CPU_TRAINER))
    np.testing.assert_allclose(loaded.predict(OCL, series=series).values(),
                               np.load(tmp_path / "expected.npy"), rtol=1e-5, atol=1e-6)
    assert loaded.model_params["backbone"] == str(tiny_gpt2)
    assert loaded.untrained_model().model_params["backbone"] == str(tiny_gpt2)

    other = save_tiny_gpt2(tmp_path / "other-gpt2", seed=1)
    with pytest.raises(BackboneMismatchError):
        CALFModel.load(path, map_location="cpu", backbone=str(other))


# darts creates its checkpoint folder before Lightning's ModelCheckpoint inspects it
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_load_from_checkpoint_best_and_last(tiny_gpt2, tmp_path) -> None:
    series = make_series(120)
    train, val = series[:90], series[90 - ICL:]
    kwargs = tiny_kwargs(tiny_gpt2, n_epochs=3, save_checkpoints=True, model_name="calf",
                         work_dir=str(tmp_path))
    model = CALFModel(**kwargs)
    model.fit(train, val_series=val)
    expected = model.predict(OCL, series=train).values()
    checkpoints = sorted(p.name for p in (tmp_path / "calf" / "checkpoints").iterdir())
    assert [name.split("-")[0] for name in checkpoints] == ["best", "last"]

    last = CALFModel.load_from_checkpoint("calf", work_dir=str(tmp_path), best=False)
    np.testing.assert_array_equal(last.predict(OCL, series=train).values(), expected)
    best = CALFModel.load_from_checkpoint("calf", work_dir=str(tmp_path), best=True)
    best_forecast = best.predict(OCL, series=train).values()
    assert np.isfinite(best_forecast).all()
    if "epoch=2" in checkpoints[0]:
        np.testing.assert_array_equal(best_forecast, expected)

    weights_only = CALFModel(**{**kwargs, "model_name": "other"})
    weights_only.load_weights_from_checkpoint("calf", work_dir=str(tmp_path), best=False)
    np.testing.assert_array_equal(weights_only.predict(OCL, series=train).values(), expected)

    last.fit(train, val_series=val, epochs=4)  # resumes from the checkpoint: one more epoch
    assert last.epochs_trained == 4


def test_untrained_model_round_trip(fitted) -> None:
    model, series, _ = fitted
    fresh = model.untrained_model()
    assert fresh.model is None and not fresh._fit_called
    assert fresh.model_params == model.model_params
    fresh.fit(series)
    np.testing.assert_array_equal(fresh.predict(OCL).values(), model.predict(OCL).values())


# ---------------------------------------------------------------------- sktime adapter


def test_same_forecasts_as_the_sktime_adapter(tmp_path) -> None:
    """Same seed, data, windows and settings: the two adapters train the same network.

    One batch per epoch (so the shuffling order does not matter) and no dropout anywhere (the
    adapters draw their dropout masks from differently seeded generators)."""
    sktime_adapter = pytest.importorskip("calf_forecaster.sktime")
    backbone = save_tiny_gpt2(tmp_path / "gpt2-no-dropout", seed=0, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0)
    common = {"backbone": str(backbone), "n_layers": 2, "n_prototypes": 8, "n_heads": 4,
              "encoder_ff_dim": 32, "dropout": 0.0, "lora_dropout": 0.0}
    series = make_series(60)  # 60 - 12 - 6 + 1 = 43 windows, one batch
    darts_model = CALFModel(ICL, OCL, batch_size=64, n_epochs=3, random_state=7,
                            pl_trainer_kwargs=dict(CPU_TRAINER), **common)
    darts_model.fit(series)
    forecaster = sktime_adapter.CALFForecaster(
        seq_len=ICL, batch_size=64, max_epochs=3, validation_size=0, scale=False,
        random_state=7, trainer_kwargs=dict(CPU_TRAINER), **common)
    forecaster.fit(series.to_dataframe(), fh=list(range(1, OCL + 1)))
    np.testing.assert_allclose(darts_model.predict(OCL).values(),
                               forecaster.predict().to_numpy(), rtol=1e-4, atol=1e-5)


def test_per_term_distances_reach_darts_loss_and_m4_losses_are_refused(tiny_gpt2) -> None:
    model = CALFModel(**tiny_kwargs(tiny_gpt2, supervised_loss="mse"))
    assert isinstance(model.pl_module_params["loss_fn"], torch.nn.MSELoss)
    assert isinstance(CALFModel(**tiny_kwargs(tiny_gpt2)).pl_module_params["loss_fn"],
                      torch.nn.L1Loss)
    for field in ("supervised_loss", "output_loss"):
        with pytest.raises(ValueError, match=f"`{field}`='smape' needs the masks"):
            CALFModel(**tiny_kwargs(tiny_gpt2, **{field: "smape"}))
