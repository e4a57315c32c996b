"""calf-bench: protocols from the datasets module, every test window scored, M4 test file untouched
during training, the command's outputs, resume and shards."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from calf_forecaster.bench import cli, grid, records, runners
from calf_forecaster.datasets import few_shot_split, long_term_split, n_windows
from conftest import DATA_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_ett = pytest.mark.skipif(not (DATA_DIR / "ett" / "ETTh1.csv").is_file(),
                               reason="ETTh1 not in any data folder")
needs_m4 = pytest.mark.skipif(not (DATA_DIR / "m4" / "Hourly-naive2.csv").is_file(),
                              reason="M4 Hourly not in any data folder")


def spec(**changes) -> grid.RunSpec:
    fields = {"suite": "long-term", "dataset": "ETTh1", "seq_len": 96, "pred_len": 96,
              "variant": "last-value", "seed": 2021, "backbone": "tiny", "max_epochs": 1}
    return grid.RunSpec(**{**fields, **changes})


@needs_ett
def test_split_borders_and_window_counts_come_from_the_datasets_module(monkeypatch) -> None:
    calls = []
    original = runners.long_term_split
    monkeypatch.setattr(runners, "long_term_split",
                        lambda *a: calls.append(a) or original(*a))
    data = runners.load_split("ETTh1", 96, DATA_DIR)
    assert calls == [("ETTh1", 17420, 96)]
    assert data.split == long_term_split("ETTh1", 17420, 96)
    x, y = runners.scored_windows(data, 96, 96)
    assert len(x) == len(y) == n_windows(len(data.test), 96, 96) == 2785
    # train-only scaling: the training split is standardised, the test split is not exactly
    np.testing.assert_allclose(data.train.mean(axis=0), 0, atol=1e-9)
    assert np.abs(data.test.mean(axis=0)).max() > 0.05


@needs_ett
def test_every_etth1_test_window_is_scored_with_no_batch_dropped(monkeypatch, tmp_path) -> None:
    seen = []
    original = runners.score_windows
    monkeypatch.setattr(runners, "score_windows",
                        lambda f, a: seen.append((len(f), len(a))) or original(f, a))
    # CALF (tiny backbone, batch 256 does not divide 2785) and the last-value baseline
    for variant in ("calf", "last-value"):
        body = runners.execute(spec(variant=variant, stride=64), DATA_DIR, cache=tmp_path)
        assert body["status"] == "ok" and body["windows"]["test"] == 2785
        assert body["cost"]["predict_windows"] == 2785
    assert seen == [(2785, 2785), (2785, 2785)]


@needs_ett
def test_few_shot_window_counts_and_the_impossible_cell(tmp_path) -> None:
    full = long_term_split("ETTh1", 17420, 96)
    for percent, rows in ((5, 523), (10, 950)):
        data = runners.load_split("ETTh1", 96, DATA_DIR, percent=percent, pred_len=96)
        assert data.split == few_shot_split(full, 96, percent, 96)
        assert len(data.train) == rows
        body = runners.execute(spec(suite="few-shot", percent=percent), DATA_DIR, cache=tmp_path)
        assert body["windows"]["train"] == rows - 96 - 96 + 1  # 332 and 759
        assert body["windows"]["test"] == 2785  # validation and test unchanged
    impossible = runners.execute(spec(suite="few-shot", percent=5, pred_len=720), DATA_DIR,
                                 cache=tmp_path)
    assert impossible["status"] == "impossible" and "no training window" in impossible["reason"]
    few = grid.expand_grid(["few-shot"], ["calf", "last-value"], [1, 2], ["ETTh1"], [96])
    assert {(s.variant, s.loss_setting) for s in few} == {
        ("calf", "reference"), ("calf", "full"), ("last-value", "full")}
    reference = runners.long_term_training(spec(suite="few-shot", percent=10, variant="calf",
                                                loss_setting="reference"), "ETTh1")
    assert (reference.output_weight, reference.feature_weight) == (0.0, 0.0)


@needs_m4
@needs_ett
def test_zero_shot_pair_with_another_number_of_variates(monkeypatch, tmp_path) -> None:
    """Source ETTh1 (7 variates), target ETTm2 cut to 3 variates: CALF trains on 7 and forecasts
    the 3 (one token per variate), the naive baseline too; darts cannot, and says so before
    training."""
    original = runners.load_split

    def load_split(name, *args, **kwargs):
        data = original(name, *args, **kwargs)
        if name != "ETTm2":
            return data
        return runners.LongTermData(data.name, data.columns[:3], data.split, data.scaler,
                                    data.train[:, :3], data.validation[:, :3], data.test[:, :3],
                                    data.n_rows)

    monkeypatch.setattr(runners, "load_split", load_split)
    seen = []
    original_score = runners.score_windows
    monkeypatch.setattr(runners, "score_windows",
                        lambda f, a: seen.append((f.shape, a.shape)) or original_score(f, a))
    pair = {"suite": "zero-shot", "source": "ETTh1", "dataset": "ETTm2", "max_rows": 2000,
            "seq_len": 16, "pred_len": 8, "stride": 8}
    calf = runners.execute(spec(variant="calf", **pair), DATA_DIR, cache=tmp_path)
    naive = runners.execute(spec(variant="last-value", **pair), DATA_DIR, cache=tmp_path)
    assert calf["status"] == naive["status"] == "ok"
    assert calf["cost"]["epochs"] == 1 and calf["windows"]["test"] > 0
    n_test = calf["windows"]["test"]
    assert seen == [((n_test, 8, 3), (n_test, 8, 3))] * 2
    trained = []
    monkeypatch.setattr(runners, "fit_darts", lambda *a: trained.append(a))
    darts = runners.execute(spec(variant="nlinear", **pair), DATA_DIR, cache=tmp_path)
    assert darts["status"] == "impossible" and "7 variates" in darts["reason"]
    assert trained == []


def test_m4_validation_and_training_never_read_the_test_file(monkeypatch, tmp_path) -> None:
    from calf_forecaster.pipeline import CALFPipeline

    state = {"trained": False, "test_reads": 0}
    load, fit = runners.load_m4, CALFPipeline.fit_datasets

    def guarded_load(group, subset="train", *args, **kwargs):
        if subset == "test":
            if not state["trained"]:
                raise AssertionError("the M4 test file was read before training ended")
            state["test_reads"] += 1
        return load(group, subset, *args, **kwargs)

    def fit_then_flag(self, *args, **kwargs):
        run = fit(self, *args, **kwargs)
        state["trained"] = True
        return run

    monkeypatch.setattr(runners, "load_m4", guarded_load)
    monkeypatch.setattr(CALFPipeline, "fit_datasets", fit_then_flag)
    body = runners.execute(spec(suite="short-term", dataset="Hourly", pred_len=48, variant="calf",
                                max_rows=12), DATA_DIR, cache=tmp_path)
    assert body["status"] == "ok" and state["test_reads"] == 1
    assert body["protocol"]["training"]["supervised_loss"] == "smape"
    assert body["protocol"]["training"]["output_loss"] == "mase"
    assert body["protocol"]["training"]["mase_seasonality"] == 24
    assert body["protocol"]["training"]["validation_loss"] == "smape"
    assert body["protocol"]["selection"]["metric"] == "val_smape"
    assert body["windows"] == {"train": 12, "validation": 12, "test": 12}
    assert set(body["metrics"]) >= {"smape", "mase", "owa"}


COST_FIELDS = {"parameters_total", "parameters_trainable", "epochs", "seconds_per_epoch",
               "train_windows_per_s", "predict_windows_per_s", "peak_rss_mib",
               "cuda_max_memory_allocated_mib", "device", "precision"}


@needs_ett
def test_smoke_run_writes_every_output_and_a_second_run_resumes(monkeypatch, tmp_path,
                                                                capsys) -> None:
    argv = ["run", "--fast", "--datasets", "ETTh1", "--variants", "calf,last-value",
            "--data-dir", str(DATA_DIR), "--output-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    written = sorted((tmp_path / "records").glob("*.json"))
    assert len(written) == 2
    for path in written:
        record = json.loads(path.read_text())
        assert record["status"] == "ok" and COST_FIELDS <= set(record["cost"])
        assert {"cpu", "cores", "gpus"} <= set(record["machine"])
        assert record["packages"]["torch"] and "commit" in (record["git"] or {"commit": None})
        assert record["windows"]["test"] > 0 and record["key"] == grid.RunSpec.from_dict(
            record["spec"]).key()
    calf = next(json.loads(p.read_text()) for p in written if "_calf_" in p.name)
    assert calf["cost"]["epochs"] == 1 and calf["cost"]["parameters_trainable"] > 0
    selection = calf["protocol"]["selection"]  # the epoch the validation split chose
    assert selection["metric"] == "val_mse" and selection["best_epoch"] == 0
    assert selection["best_validation_loss"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "published CALF" in report and "0.432 / 0.428" in report
    plots = ["forecast.png", "cost.png", *(p.name for p in tmp_path.glob("variants-*.png"))]
    assert len(plots) == 3  # one cell (calf and last-value): one variants plot
    for plot in plots:
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"
        assert f"]({plot})" in report
    mtimes = [p.stat().st_mtime_ns for p in written]
    calls = []
    monkeypatch.setattr(runners, "execute", lambda *a, **k: calls.append(a))
    assert cli.main(argv) == 0
    assert calls == [] and [p.stat().st_mtime_ns for p in written] == mtimes
    assert "0 run(s) done, 2 skipped" in capsys.readouterr().out
    out = tmp_path / "again.md"
    assert cli.main(["report", "--records-dir", str(tmp_path / "records"), "--output",
                     str(out)]) == 0
    assert "calf-bench report --records-dir" in out.read_text()


def test_shards_partition_the_sorted_grid() -> None:
    specs = grid.expand_grid(["long-term", "zero-shot"], ["calf", "no-llm", "nlinear",
                                                          "last-value"], [2021, 2022],
                             ["ETTh1", "ETTm2"], [96, 192])
    first, second = grid.shard(specs, 0, 2), grid.shard(specs, 1, 2)
    assert first and second and not set(first) & set(second)
    assert sorted(first + second, key=grid.RunSpec.sort_key) == specs
    assert len({s.key() for s in specs}) == len(specs)  # keys are distinct and stable
    assert grid.parse_shard("1/2") == (1, 2)
    with pytest.raises(ValueError, match="0 <= i < n"):
        grid.parse_shard("2/2")
    assert sum(s.variant == "last-value" for s in specs) == len(specs) // 7  # one seed only


def test_commit_records_commits_that_file_only(tmp_path) -> None:
    repo = tmp_path / "repo"
    (repo / "records").mkdir(parents=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    (repo / "other.txt").write_text("not mine")
    record = repo / "records" / "r.json"
    record.write_text("{}")
    subprocess.run([*git, "config", "user.name", "t"], check=True)
    subprocess.run([*git, "config", "user.email", "t@t"], check=True)
    assert records.commit_record(record, "bench record: r")
    tracked = subprocess.run([*git, "ls-files"], capture_output=True, text=True).stdout.split()
    assert tracked == ["records/r.json"]


def test_report_keeps_one_naive_row_per_cell_and_joins_it_to_every_plot() -> None:
    """A naive baseline trains nothing: its records under two run lengths make one row, which
    appears beside the CALF and darts variants of each run length."""
    from calf_forecaster.bench import report

    def record(variant: str, epochs: int, mse: float, seed: int = 2021,
               backbone: str = "gpt2-random") -> dict:
        fields = spec(variant=variant, max_epochs=epochs, seed=seed, backbone=backbone)
        return {"status": "ok", "spec": fields.to_dict(), "metrics": {"mse": mse, "mae": mse},
                "cost": {"seconds_per_epoch": 1.0}, "windows": {"test": 10}}

    records = [record("last-value", 3, 1.3, backbone="none"),
               record("last-value", 10, 1.3, backbone="none"),
               record("random-init", 3, 0.5), record("random-init", 3, 0.7, seed=2022),
               record("random-init", 10, 0.4), record("nlinear", 10, 0.45, backbone="none")]
    rows = report.aggregate(records)
    naive = [r for r in rows if r["spec"]["variant"] == "last-value"]
    assert len(naive) == 1 and naive[0]["seeds"] == [2021]
    calf = next(r for r in rows if r["spec"]["variant"] == "random-init"
                and r["spec"]["max_epochs"] == 3)
    assert calf["seeds"] == [2021, 2022] and calf["metrics"]["mse"][0] == pytest.approx(0.6)
    cells = report.plot_cells(rows)
    variants = {cell[5]: sorted(r["spec"]["variant"] for r in members)
                for cell, members in cells.items()}
    assert variants == {"3 ep": ["last-value", "random-init"],
                        "10 ep": ["last-value", "nlinear", "random-init"]}


@needs_ett
def test_progress_shows_runs_and_epochs_only_when_asked(tmp_path, caplog) -> None:
    """``--progress``: which run, which epoch (with its validation score), time left; without it
    the runs log nothing at INFO."""
    import logging

    argv = ["run", "--fast", "--datasets", "ETTh1", "--variants", "calf", "--data-dir",
            str(DATA_DIR)]
    with caplog.at_level(logging.INFO):
        assert cli.main([*argv, "--output-dir", str(tmp_path / "quiet")]) == 0
    assert not [r for r in caplog.records if r.name.startswith("calf_forecaster.bench")]
    caplog.clear()
    assert cli.main([*argv, "--output-dir", str(tmp_path / "shown"), "--progress"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "calf_forecaster.bench"]
    assert any(line.startswith("[1/1] long-term ETTh1") for line in lines)
    epoch = [line for line in lines if "epoch 1/1 (val_mse" in line]
    assert len(epoch) == 1 and "s left in this run" in epoch[0]
