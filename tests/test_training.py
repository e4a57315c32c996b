from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from calf_forecaster import CALF, TrainingConfig
from calf_forecaster.losses import calf_loss
from calf_forecaster.preprocessing import (
    ChannelScaler,
    WindowDataset,
    sliding_windows,
    split_for_validation,
)
from calf_forecaster.training import (
    VALIDATION_METRIC,
    TrainingRun,
    build_optimizer,
    cosine_factor,
    fit_calf,
    predict_windows,
    seed_everything,
    train_calf,
)
from conftest import save_tiny_gpt2, tiny_config

QUIET = {"enable_progress_bar": False}


class History(pl.Callback):
    """Records per-epoch metrics and the train/eval mode seen in validation."""

    def __init__(self) -> None:
        self.train_loss: list[float] = []
        self.val_mse: list[float] = []
        self.validation_modes: set[bool] = set()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.validation_modes |= {m.training for m in pl_module.model.modules()}

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.val_mse.append(float(trainer.callback_metrics[VALIDATION_METRIC]))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.train_loss.append(float(trainer.callback_metrics["train_loss"]))


@pytest.fixture(scope="module")
def ett_windows(ett_h1) -> dict[str, object]:
    values = ett_h1.to_numpy()[:1400]
    scaler = ChannelScaler().fit(values[:1000])
    scaled = scaler.transform(values)
    train, validation = split_for_validation([scaled[:1000]], 0.25, 16, 8)
    return {"train": WindowDataset(train, 16, 8, stride=4),
            "validation": WindowDataset(validation, 16, 8),
            "test": sliding_windows(scaled[1000:], 16, 8)}


def test_cosine_factor_matches_torch_cosine_annealing() -> None:
    config = TrainingConfig(learning_rate=5e-4, cosine_t_max=20, min_learning_rate=1e-8)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20, eta_min=1e-8)
    for epoch in range(45):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            5e-4 * cosine_factor(epoch, 5e-4, config), rel=1e-9, abs=1e-15)
        optimizer.step()
        scheduler.step()


def test_one_adam_with_two_groups_equals_the_two_optimisers_of_the_recipe(tiny_gpt2) -> None:
    torch.manual_seed(0)
    ours = CALF.from_pretrained(tiny_config(tiny_gpt2)).eval()  # eval: no dropout, so both runs see the same net
    theirs = copy.deepcopy(ours)
    config = TrainingConfig(learning_rate=5e-3, feature_learning_rate=1e-3, cosine_t_max=2)
    optimizer, scheduler = build_optimizer(ours, config)
    main = torch.optim.Adam(list(theirs.main_parameters()), lr=5e-3, fused=True)
    main_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(main, T_max=2, eta_min=1e-8)
    features = torch.optim.Adam(list(theirs.feature_projection_parameters()), lr=1e-3, fused=True)
    generator = torch.Generator().manual_seed(1)
    for _ in range(4):  # one step per "epoch" so the cosine schedule moves
        x, y = torch.randn(4, 16, 3, generator=generator), torch.randn(4, 8, 3, generator=generator)
        for model, optimisers in ((ours, [optimizer]), (theirs, [main, features])):
            loss = calf_loss(model(x, with_text_branch=True), y, TrainingConfig()).total
            for o in optimisers:
                o.zero_grad()
            loss.backward()
            for o in optimisers:
                o.step()
        scheduler.step()
        main_schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(main.param_groups[0]["lr"])
    assert optimizer.param_groups[1]["lr"] == 1e-3
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def _train_with_history(backbone, windows, seed: int,
                        **recipe: object) -> tuple[CALF, History, TrainingRun]:
    """A tiny CALF trained on the ETTh1 windows with validation, its recorded history and run."""
    seed_everything(seed)
    model = CALF.from_pretrained(tiny_config(backbone))
    history = History()
    config = TrainingConfig(batch_size=32, seed=seed, **recipe)
    run = fit_calf(model, windows["train"], windows["validation"], config,
                   {**QUIET, "callbacks": [history]})
    return model, history, run


def test_loss_falls_and_validation_runs_in_eval_mode(tiny_gpt2, ett_windows) -> None:
    model, history, _ = _train_with_history(tiny_gpt2, ett_windows, seed=0, max_epochs=4,
                                         patience=10, learning_rate=1e-3)
    assert len(history.train_loss) == 4
    assert history.train_loss[-1] < 0.8 * history.train_loss[0]
    assert history.validation_modes == {False}
    assert not model.training


def test_same_seed_same_forecasts_and_other_seed_differs(tiny_gpt2, ett_windows) -> None:
    forecasts = []
    for seed in (5, 5, 6):
        config = TrainingConfig(batch_size=64, max_epochs=1, seed=seed)
        seed_everything(seed)
        model = train_calf(CALF.from_pretrained(tiny_config(tiny_gpt2)), ett_windows["train"], None, config, QUIET)
        forecasts.append(predict_windows(model, ett_windows["test"][0][:20]))
    assert forecasts[0].shape == (20, 8, 7)
    np.testing.assert_array_equal(forecasts[0], forecasts[1])
    assert not np.allclose(forecasts[0], forecasts[2])


def test_early_stopping_restores_the_best_epoch(tiny_gpt2, ett_windows) -> None:
    model, history, run = _train_with_history(tiny_gpt2, ett_windows, seed=1, max_epochs=6,
                                              patience=2, learning_rate=3e-2)
    x = torch.stack([ett_windows["validation"][i][0] for i in range(len(ett_windows["validation"]))])
    y = torch.stack([ett_windows["validation"][i][1] for i in range(len(ett_windows["validation"]))])
    final = float(((torch.as_tensor(predict_windows(model, x)) - y) ** 2).mean())
    assert final == pytest.approx(min(history.val_mse), rel=1e-4)
    # the run reports the epoch chosen and its score
    assert run.best_validation_loss == pytest.approx(min(history.val_mse), rel=1e-6)
    assert run.best_epoch == int(np.argmin(history.val_mse))


@pytest.mark.parametrize("validation_loss", ["mae", "smape"])
def test_early_stopping_follows_the_chosen_validation_score(tiny_gpt2, ett_windows,
                                                           validation_loss: str) -> None:
    """``validation_loss`` names what is logged and followed: the restored epoch is the one of
    the lowest such score, which is the score of the restored weights on the validation set."""
    from calf_forecaster.losses import smape_loss

    class Scores(pl.Callback):
        def __init__(self) -> None:
            self.seen: list[dict[str, float]] = []

        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            self.seen.append({k: float(v) for k, v in trainer.callback_metrics.items()
                              if k.startswith("val_")})

    seed_everything(3)
    model = CALF.from_pretrained(tiny_config(tiny_gpt2))
    scores = Scores()
    config = TrainingConfig(batch_size=32, seed=3, max_epochs=4, patience=10,
                            learning_rate=3e-2, validation_loss=validation_loss)
    run = fit_calf(model, ett_windows["train"], ett_windows["validation"], config,
                   {**QUIET, "callbacks": [scores]})
    name = f"val_{validation_loss}"
    assert run.validation_metric == name and all(set(s) == {name} for s in scores.seen)
    values = [s[name] for s in scores.seen]
    assert run.best_epoch == int(np.argmin(values))
    x = torch.stack([ett_windows["validation"][i][0] for i in range(len(ett_windows["validation"]))])
    y = torch.stack([ett_windows["validation"][i][1] for i in range(len(ett_windows["validation"]))])
    forecast = torch.as_tensor(predict_windows(model, x), dtype=torch.float32)
    final = (float((forecast - y).abs().mean()) if validation_loss == "mae"
             else float(smape_loss(forecast, y)))
    assert final == pytest.approx(min(values), rel=1e-3)


def test_predict_windows_validates_input(tiny_gpt2) -> None:
    model = CALF.from_pretrained(tiny_config(tiny_gpt2))
    with pytest.raises(ValueError, match="NaN"):
        predict_windows(model, np.full((2, 16, 3), np.nan))
    with pytest.raises(ValueError, match="shape"):
        predict_windows(model, np.zeros((16, 3)))
    with pytest.raises(TypeError, match="numeric"):
        predict_windows(model, np.array([[["x"] * 3] * 16]))
    assert predict_windows(model, np.zeros((3, 16, 2)), batch_size=2).shape == (3, 8, 2)
    assert model.training  # mode restored


@pytest.mark.parametrize("accelerator", [
    "cpu",
    pytest.param("gpu", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                 reason="needs CUDA")),
])
def test_trainer_kwargs_reach_lightning_mixed_precision_and_devices(tiny_gpt2, ett_windows,
                                                                   accelerator: str) -> None:
    seed_everything(2)
    model = CALF.from_pretrained(tiny_config(tiny_gpt2))
    config = TrainingConfig(batch_size=64, max_epochs=1, seed=2)
    train_calf(model, ett_windows["train"], ett_windows["validation"], config,
               {**QUIET, "accelerator": accelerator, "devices": 1, "precision": "bf16-mixed"})
    forecast = predict_windows(model, ett_windows["test"][0][:4])
    assert forecast.shape == (4, 8, 7) and np.isfinite(forecast).all()
    assert next(model.parameters()).dtype == torch.float32  # AMP keeps float32 master weights


class RecordProcesses(pl.Callback):
    """Writes one file per training process (the processes of ``ddp_spawn`` share no memory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on_train_start(self, trainer, pl_module) -> None:
        (self.directory / f"rank{trainer.global_rank}-of-{trainer.world_size}").touch()


@pytest.fixture()
def without_dropout(ett_h1, tmp_path) -> dict[str, object]:
    """A tiny model with every dropout off (training is then a function of the batches' content),
    16 training windows, 4 validation windows and 10 test windows of real ETTh1."""
    backbone = save_tiny_gpt2(tmp_path / "no-dropout", resid_pdrop=0.0, embd_pdrop=0.0,
                              attn_pdrop=0.0)
    values = ChannelScaler().fit(ett_h1.to_numpy()[:300]).transform(ett_h1.to_numpy()[:300])
    setup = {"config": tiny_config(backbone, dropout=0.0, lora_dropout=0.0),
             "train": WindowDataset(values[:16 + 8 + 15], 16, 8),
             "validation": WindowDataset(values[100:100 + 16 + 8 + 3], 16, 8),
             "test": torch.tensor(sliding_windows(values[200:], 16, 8)[0][:10]),  # copy: a view
             "training": TrainingConfig(batch_size=16, max_epochs=4, patience=10, seed=0,
                                        learning_rate=1e-2)}
    assert (len(setup["train"]), len(setup["validation"])) == (16, 4)
    return setup


def test_ddp_on_two_processes_equals_one_process_on_the_whole_batch(without_dropout,
                                                                    tmp_path) -> None:
    """Lightning DDP (2 CPU processes, gloo) averages gradients over ranks, so with dropout off
    two ranks of 8 windows take the same steps as one process with all 16; validation, early
    stopping and the best-epoch restore run under DDP, and the weights come back to this process."""
    setup = without_dropout
    config, train, validation, test_x = (setup[k] for k in ("config", "train", "validation",
                                                            "test"))

    def fit(batch_size: int, trainer_kwargs: dict) -> CALF:
        seed_everything(0)
        model = CALF.from_pretrained(config)
        training = dataclasses.replace(setup["training"], batch_size=batch_size)
        return train_calf(model, train, validation, training, {**QUIET, **trainer_kwargs})

    seed_everything(0)
    initial = predict_windows(CALF.from_pretrained(config), test_x)
    single = predict_windows(fit(16, {}), test_x)
    processes = tmp_path / "processes"
    processes.mkdir()
    distributed = predict_windows(fit(8, {
        "accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn",
        "callbacks": [RecordProcesses(processes)]}), test_x)
    assert sorted(p.name for p in processes.iterdir()) == ["rank0-of-2", "rank1-of-2"]
    assert np.abs(single - initial).max() > 1e-2  # training moved the forecasts
    np.testing.assert_allclose(distributed, single, atol=1e-5)


@pytest.mark.parametrize(("learning_rate", "best_epoch"), [(3e-3, 4), (1e-2, 2)])
# the resumed run writes to a second directory on purpose (the first keeps its last.ckpt to check)
@pytest.mark.filterwarnings("ignore:The dirpath has changed from:UserWarning")
def test_lightning_checkpoints_hold_no_backbone_and_resume_where_they_stopped(
        without_dropout, tmp_path, learning_rate: float, best_epoch: int) -> None:
    """2 epochs + resume to 4 from the checkpoint = 4 epochs in one go: weights, Adam moments,
    cosine schedule and epoch continue (best epoch 4), and the best epoch found before the
    checkpoint is still restored at the end (best epoch 2). The checkpoint holds the trained
    state only, and refuses a model on another backbone."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from calf_forecaster.persistence import BackboneMismatchError

    setup = without_dropout
    training = dataclasses.replace(setup["training"], learning_rate=learning_rate)

    def fit(max_epochs: int, callbacks: list, ckpt_path: Path | None = None,
            config: object = setup["config"]) -> np.ndarray:
        seed_everything(0)
        model = train_calf(CALF.from_pretrained(config), setup["train"], setup["validation"],
                           dataclasses.replace(training, max_epochs=max_epochs),
                           {**QUIET, "callbacks": callbacks},
                           ckpt_path=None if ckpt_path is None else str(ckpt_path))
        return predict_windows(model, setup["test"])

    history = History()
    in_one_go = fit(4, [history])
    assert int(np.argmin(history.val_mse)) + 1 == best_epoch
    after_two = fit(2, [ModelCheckpoint(dirpath=tmp_path / "first", save_last=True)])
    last = tmp_path / "first" / "last.ckpt"
    resumed = fit(4, [ModelCheckpoint(dirpath=tmp_path / "second")], ckpt_path=last)
    np.testing.assert_allclose(resumed, in_one_go, atol=1e-5)
    if best_epoch > 2:
        assert np.abs(after_two - in_one_go).max() > 1e-3  # the resumed epochs did train

    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    model = CALF.from_pretrained(setup["config"])
    assert set(checkpoint["state_dict"]) == {f"model.{key}" for key in model.portable_state_dict()}
    assert checkpoint["epoch"] == 1 and checkpoint["optimizer_states"]

    other = save_tiny_gpt2(tmp_path / "other", seed=1, resid_pdrop=0.0, embd_pdrop=0.0,
                           attn_pdrop=0.0)
    with pytest.raises(BackboneMismatchError, match="other word embeddings"):
        fit(4, [], ckpt_path=last, config=setup["config"].replace(backbone=str(other)))
