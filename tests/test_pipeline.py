"""The shared pipeline and the pure network constructor (``calf_forecaster.pipeline``, ``model``).

Tiny offline backbones only (``calf_forecaster.testing``); the series are noisy sines.
"""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from calf_forecaster import CALF, CALFConfig, TrainingConfig
from calf_forecaster import backbone as backbone_module
from calf_forecaster.backbone import BackboneNotFoundError, load_backbone_parts
from calf_forecaster.persistence import backbone_location
from calf_forecaster.pipeline import CALFPipeline, build_network, inference_device
from calf_forecaster.testing import save_tiny_gpt2, tiny_config, tiny_parts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sines(length: int = 120, columns: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = np.arange(length)[:, None]
    return np.sin(steps / 3 + np.arange(columns)) * 5 + 20 + 0.1 * rng.standard_normal(
        (length, columns))


def test_building_from_parts_does_no_io(monkeypatch, tmp_path) -> None:
    """CALF(config, parts) loads nothing: loading and the prototype cache are never touched."""
    parts = tiny_parts()

    def no_io(*args, **kwargs):
        raise AssertionError("I/O during construction")

    monkeypatch.setattr(backbone_module, "load_backbone", no_io)
    monkeypatch.setattr(backbone_module, "cached_word_prototypes", no_io)
    monkeypatch.setenv("CALF_FORECASTER_CACHE", str(tmp_path / "cache"))
    config = CALFConfig(seq_len=16, pred_len=8, backbone="not-on-disk", n_layers=2,
                        n_prototypes=16, n_heads=4, encoder_ff_dim=64)
    model = CALF(config, parts)
    assert model.eval()(torch.randn(2, 16, 3)).forecast.shape == (2, 8, 3)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(TypeError, match="from_pretrained"):
        CALF(config, "gpt2")  # type: ignore[arg-type]


def test_ablations_load_the_embeddings_only(monkeypatch) -> None:
    """The ablations that replace the language model need its width and word embeddings only."""
    blocks: list[int | None] = []
    real = backbone_module.load_backbone

    def spy(config, n_blocks=None):
        blocks.append(n_blocks)
        return real(config, n_blocks)

    monkeypatch.setattr(backbone_module, "load_backbone", spy)
    for mode in ("none", "attention", "transformer"):
        parts = load_backbone_parts(tiny_config(llm_mode=mode))
        assert parts.model is None and parts.width == 32 and parts.prototypes.shape == (16, 32)
    full = load_backbone_parts(tiny_config())
    assert blocks == [0, 0, 0, None] and len(full.model.h) == 2


def test_seeded_build_is_repeatable_and_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = build_network(tiny_config(), seed=4)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's random state is untouched
    second = build_network(tiny_config(), seed=4)
    other = build_network(tiny_config(), seed=5)
    assert torch.equal(first.head.weight, second.head.weight)
    assert not torch.equal(first.head.weight, other.head.weight)


def test_fit_and_forecast_scale_train_and_unscale() -> None:
    series = [sines(), sines(150, seed=1)]
    pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=2, seed=0,
                                                                batch_size=32))
    initial = pipeline.network.head.weight.detach().clone()
    run = pipeline.fit(series)
    assert run.epochs == 2 and run.n_train_windows > 0 and run.n_val_windows > 0
    assert not torch.equal(initial, pipeline.network.head.weight)
    np.testing.assert_allclose(pipeline.scaler.mean_, np.concatenate(series).mean(axis=0))
    forecast = pipeline.forecast(np.stack([s[-16:] for s in series]))
    assert forecast.shape == (2, 8, 2) and forecast.dtype == np.float64
    assert np.all(np.abs(forecast - 20) < 15)  # in the series' own units, not standardised
    assert pipeline.trained_on == "cpu" and next(pipeline.network.parameters()).device.type == "cpu"


def test_zero_epochs_keeps_the_weights_and_fits_the_scaler() -> None:
    pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=0, seed=0))
    before = {k: v.clone() for k, v in pipeline.network.state_dict().items()}
    run = pipeline.fit([sines()])
    assert (run.epochs, run.n_train_windows) == (0, 0)
    assert all(torch.equal(before[k], v) for k, v in pipeline.network.state_dict().items())
    assert pipeline.scaler is not None


def test_explicit_validation_and_stride() -> None:
    pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=1, seed=0))
    run = pipeline.fit([sines(100)], validation=[sines(40, seed=3)], stride=4)
    assert run.n_train_windows == (100 - 16 - 8) // 4 + 1 and run.n_val_windows == 40 - 24 + 1


def test_pickle_and_save_give_identical_forecasts_and_take_a_moved_backbone(tmp_path) -> None:
    backbone = save_tiny_gpt2(tmp_path / "gpt2")
    pipeline = CALFPipeline.build(tiny_config(backbone), TrainingConfig(max_epochs=1, seed=0))
    pipeline.fit([sines()])
    context = sines()[None, -16:]
    expected = pipeline.forecast(context)
    pipeline.save(tmp_path / "saved", metadata={"columns": ["a", "b"]})
    serialised = pickle.dumps(pipeline)
    assert b"branches.backbone.h.0.attn.c_attn.base_layer.weight" not in serialised

    moved = shutil.move(str(backbone), tmp_path / "moved-gpt2")
    with pytest.raises(BackboneNotFoundError):
        pickle.loads(serialised)
    with backbone_location(moved):
        restored = pickle.loads(serialised)
    np.testing.assert_array_equal(restored.forecast(context), expected)
    loaded, metadata = CALFPipeline.load(tmp_path / "saved", backbone=moved)
    assert metadata == {"columns": ["a", "b"]}
    np.testing.assert_array_equal(loaded.forecast(context), expected)
    np.testing.assert_array_equal(loaded.scaler.scale_, pipeline.scaler.scale_)


def test_a_pickled_sktime_forecaster_loads_with_its_backbone_at_a_new_path(tmp_path) -> None:
    pytest.importorskip("sktime")
    from sktime.datasets import load_airline

    from calf_forecaster.sktime import CALFForecaster

    backbone = save_tiny_gpt2(tmp_path / "gpt2")
    params = {**CALFForecaster.get_test_params()[0], "backbone": str(backbone),
              "seq_len": 12, "validation_size": 0}
    forecaster = CALFForecaster(**params).fit(load_airline(), fh=[1, 2, 3])
    expected = forecaster.predict()
    serialised = pickle.dumps(forecaster)
    moved = shutil.move(str(backbone), tmp_path / "elsewhere")
    with backbone_location(moved):
        restored = pickle.loads(serialised)
    np.testing.assert_array_equal(restored.predict().to_numpy(), expected.to_numpy())


@pytest.mark.parametrize(("trainer_kwargs", "trained_on", "cuda", "expected"), [
    ({}, None, False, "cpu"),
    ({}, None, True, "cuda"),  # Lightning's default accelerator is "auto"
    ({"accelerator": "auto"}, None, True, "cuda"),
    ({"accelerator": "gpu"}, None, True, "cuda"),
    ({"accelerator": "cpu"}, None, True, "cpu"),
    ({"accelerator": "auto"}, "cuda:0", True, "cuda:0"),  # where it trained
    ({"accelerator": "auto"}, "cuda:0", False, "cpu"),  # trained on a GPU, loaded without one
    ({"accelerator": "gpu"}, "cpu", True, "cpu"),
])
def test_forecasts_run_where_training_ran(monkeypatch, trainer_kwargs, trained_on, cuda,
                                          expected) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert inference_device(trainer_kwargs, trained_on) == torch.device(expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_accelerator_trains_and_predicts_on_the_gpu() -> None:
    pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=1, seed=0),
                                  trainer_kwargs={"accelerator": "auto"})
    pipeline.fit([sines()])
    assert pipeline.trained_on.startswith("cuda")
    seen = []
    handle = pipeline.network.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].device.type))
    pipeline.forecast(sines()[None, -16:])
    handle.remove()
    assert seen == ["cuda"] and next(pipeline.network.parameters()).device.type == "cpu"


@pytest.mark.parametrize("precision", ["bf16-mixed", pytest.param("16-mixed", marks=(
    # Lightning maps fp16 AMP to bf16 on a CPU: that mapping is the path tested here
    pytest.mark.filterwarnings("ignore:You passed `Trainer.*AMP with fp16 is not supported"),))])
def test_mixed_precision_training_and_prediction_stay_close_to_float32(precision) -> None:
    """Half-precision matrix products (CPU autocast here) give finite forecasts near float32's;
    the float32 path is the default and unchanged."""
    series = [sines(150)]
    context = sines(150)[None, -16:]
    forecasts = {}
    for setting in ("32-true", precision):
        pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=1, seed=0),
                                      trainer_kwargs={"precision": setting})
        pipeline.fit(series)
        forecasts[setting] = pipeline.forecast(context)
        if setting == "32-true":
            default = CALFPipeline(pipeline.network, pipeline.training, pipeline.scaler)
            np.testing.assert_array_equal(default.forecast(context), forecasts[setting])
    assert np.isfinite(forecasts[precision]).all()
    spread = np.abs(forecasts["32-true"] - 20).max()
    assert np.abs(forecasts[precision] - forecasts["32-true"]).max() < 0.1 * spread


def test_fit_datasets_trains_on_the_m4_sampler_with_masked_m4_losses() -> None:
    from torch.utils.data import TensorDataset

    from calf_forecaster.datasets import M4TrainingDataset, m4_holdout, m4_last_windows

    series = {f"H{i}": sines(60 + 7 * i, columns=1, seed=i)[:, 0] for i in range(6)}
    train, targets = m4_holdout(series, 8)
    sampler = M4TrainingDataset(train, pred_len=8, seq_len=16, history_size=10.0, seed=0)
    x_val, _ = m4_last_windows(train, 16)
    validation = TensorDataset(torch.from_numpy(x_val),
                               torch.from_numpy(np.stack(list(targets.values()))[..., None]
                                                .astype(np.float32)))
    training = TrainingConfig(max_epochs=2, seed=0, batch_size=4, supervised_loss="smape",
                              output_loss="mase", feature_loss="smooth_l1", mase_seasonality=2)
    pipeline = CALFPipeline.build(tiny_config(), training)
    initial = pipeline.network.head.weight.detach().clone()
    run = pipeline.fit_datasets(sampler, validation)
    assert (run.epochs, run.n_train_windows, run.n_val_windows) == (2, 6, 6)
    assert pipeline.scaler is None and pipeline.trained_on == "cpu"
    assert not torch.equal(initial, pipeline.network.head.weight)
    x_test, _ = m4_last_windows(series, 16)
    assert pipeline.forecast(x_test).shape == (6, 8, 1)


@pytest.mark.parametrize(("mode", "count"), [("none", 9_204_320), ("attention", 15_108_704),
                                             ("transformer", 21_411_936)])
def test_ablation_parameter_counts_at_gpt2_small_width(tmp_path, mode, count) -> None:
    """The trainable parameters of Tan et al.'s ablations at GPT-2 small's width (docs/ablations.md);
    everything they hold trains (no frozen language model)."""
    from calf_forecaster.backbone import count_parameters, save_backbone_config

    config = CALFConfig(backbone=str(save_backbone_config(tmp_path)), pretrained=False,
                        llm_mode=mode)
    model = CALF.from_pretrained(config)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) == count
