"""Markdown report and PNG plots from run records (published CALF numbers beside ours).

Records are grouped into cells (suite, data set, L, H, few-shot setting, variant, backbone, run
length); each cell reports the mean and standard deviation over its seeds. Plots (matplotlib,
Agg): ``forecast.png`` (forecast against actual for a few test windows, last value drawn as the
baseline), one ``variants-<cell>.png`` per cell with two or more variants (error bars over
seeds) and ``cost.png`` (seconds per epoch against test error, for the cell with most variants).
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calf_forecaster.bench.grid import SUITES, VARIANTS
from calf_forecaster.bench.published import SOURCE, published

logger = logging.getLogger(__name__)

#: In an existing report file, everything above this line is kept when it is regenerated.
MARKER = "<!-- calf-bench results below: regenerated, do not edit -->"
#: The spec fields that make one report row (a cell); its seeds are averaged.
CELL_FIELDS = ("suite", "dataset", "source", "seq_len", "pred_len", "percent", "loss_setting",
               "variant", "backbone", "max_epochs", "stride", "max_rows", "trainer_kwargs")
_NAIVE_CELL_FIELDS = tuple(f for f in CELL_FIELDS
                           if f not in ("max_epochs", "stride", "trainer_kwargs"))


def _untrained(spec: dict[str, Any]) -> bool:
    """Naive baselines: nothing is trained, so epochs, stride and Trainer do not apply."""
    return VARIANTS[spec["variant"]].kind == "naive"


def cell_name(spec: dict[str, Any]) -> str:
    """``ETTh1``, ``ETTh1 10%``, ``ETTh1->ETTm2`` or the M4 group."""
    if spec.get("source"):
        return f"{spec['source']}->{spec['dataset']}"
    if spec.get("percent") is not None:
        return f"{spec['dataset']} {spec['percent']}%"
    return spec["dataset"]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell: seeds, mean and std of every metric, mean cost, status."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        spec = record["spec"]
        fields = _NAIVE_CELL_FIELDS if _untrained(spec) else CELL_FIELDS
        members = groups[tuple(spec.get(f) for f in fields)]
        if not (_untrained(spec) and any(m["spec"]["seed"] == spec["seed"] for m in members)):
            members.append(record)  # a naive baseline's result does not depend on the run length
    rows = []
    for members in groups.values():
        spec = members[0]["spec"]
        ok = [m for m in members if m.get("status") == "ok"]
        row: dict[str, Any] = {"spec": spec, "cell": cell_name(spec),
                               "seeds": sorted(m["spec"]["seed"] for m in ok),
                               "status": "ok" if ok else members[0].get("status"),
                               "reason": members[0].get("reason"), "metrics": {}, "cost": {}}
        if ok:
            for metric in ok[0]["metrics"]:
                if metric == "n_series":
                    continue
                row["metrics"][metric] = _mean_std([m["metrics"][metric] for m in ok])
            for field in ("seconds_per_epoch", "epochs", "parameters_trainable",
                          "parameters_total", "train_windows_per_s", "predict_windows_per_s",
                          "peak_rss_mib"):
                values = [m["cost"][field] for m in ok if m["cost"].get(field) is not None]
                row["cost"][field] = float(np.mean(values)) if values else None
            row["cost"]["device"] = ok[0]["cost"].get("device")
            row["cost"]["precision"] = ok[0]["cost"].get("precision")
            row["windows"] = ok[0]["windows"]
            row["backbone_about"] = ok[0].get("protocol", {}).get("backbone")
        rows.append(row)
    return sorted(rows, key=lambda r: (SUITES.index(r["spec"]["suite"]), r["cell"],
                                       r["spec"]["seq_len"], r["spec"]["pred_len"],
                                       r["spec"]["backbone"], _run_length(r["spec"]),
                                       r["spec"]["loss_setting"], r["spec"]["variant"]))


def _run_length(spec: dict[str, Any]) -> str:
    """Epoch cap, stride and Trainer arguments of a cell, e.g. ``3 ep, bf16-mixed``."""
    if _untrained(spec):
        return "no training"
    epochs = "protocol's epochs" if spec.get("max_epochs") is None else f"{spec['max_epochs']} ep"
    parts = [epochs] + ([f"stride {spec['stride']}"] if spec.get("stride", 1) != 1 else [])
    kwargs = json.loads(spec.get("trainer_kwargs") or "{}")
    parts += [str(kwargs.pop("precision"))] if "precision" in kwargs else []
    parts += [f"{k}={v}" for k, v in sorted(kwargs.items())]
    return ", ".join(parts)


def plot_cells(rows: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """The bar plots: the CALF variants of one backbone and run length, with the trained
    baselines (backbone ``none``) of the same data, horizon and run length and the naive ones of
    the same data and horizon; cells of one variant dropped.

    Keys are ``(suite, cell, L, H, backbone, run length, max_rows)``.
    """
    calf: dict[tuple, list[dict[str, Any]]] = defaultdict(list)  # (data, backbone, run)
    trained: dict[tuple, list[dict[str, Any]]] = defaultdict(list)  # (data, run)
    naive: dict[tuple, list[dict[str, Any]]] = defaultdict(list)  # data: every run length
    for row in rows:
        s = row["spec"]
        data = (s["suite"], row["cell"], s["seq_len"], s["pred_len"], s.get("max_rows"))
        if _untrained(s):
            naive[data].append(row)
        elif s["backbone"] == "none":
            trained[(data, _run_length(s))].append(row)
        else:
            calf[(data, s["backbone"], _run_length(s))].append(row)
    for data, run in trained:  # trained baselines alone when no CALF run shares their run length
        if not any((d, r) == (data, run) for d, _, r in calf):
            calf[(data, "none", run)] = []
    cells = {(*data[:4], backbone, run, data[4]): members + trained[(data, run)] + naive[data]
             for (data, backbone, run), members in calf.items()}
    return {cell: members for cell, members in cells.items() if len(members) > 1}


def _fmt(pair: tuple[float, float] | None, digits: int = 3) -> str:
    if pair is None:
        return ""
    mean, std = pair
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def markdown(records: Sequence[dict[str, Any]], command: str,
             plots: Sequence[str] = ()) -> str:
    """The report: one table per suite, published CALF beside ours, cost with every row."""
    rows = aggregate(records)
    lines = ["<!-- generated by calf-bench; do not edit by hand -->", "",
             f"Regenerate with `{command}`.", "",
             f"Published CALF numbers: {SOURCE}. Ours are mean ± standard deviation over the "
             f"seeds listed; MSE/MAE on the standardised test windows (every window scored).", ""]
    for suite in SUITES:
        chosen = [r for r in rows if r["spec"]["suite"] == suite]
        if not chosen:
            continue
        lines += [f"### {suite}", ""]
        if suite == "short-term":
            head = ("| group | H | backbone | run | variant | seeds | sMAPE | MASE | OWA | "
                    "published CALF (M4 avg) sMAPE/MASE/OWA | epochs | s/epoch | "
                    "trainable params | series | device |")
        else:
            head = ("| data | L | H | backbone | run | variant | loss | seeds | MSE | MAE | "
                    "published CALF MSE/MAE (of) | epochs | s/epoch | trainable params | "
                    "test windows | device |")
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for row in chosen:
            spec, m, c = row["spec"], row["metrics"], row["cost"]
            run = f"{spec['backbone']} | {_run_length(spec)}"
            if row["status"] != "ok":
                lines.append(f"| {row['cell']} | {spec['seq_len']} | {spec['pred_len']} | "
                             f"{run} | {spec['variant']} | {row['status']}: {row['reason']} |")
                continue
            seeds = ", ".join(str(s) for s in row["seeds"])
            common = (f"{_num(c.get('epochs'), 1)} | {_num(c.get('seconds_per_epoch'), 2)} | "
                      f"{_num(c.get('parameters_trainable'), 0)} | {row['windows']['test']} | "
                      f"{c.get('device')} {c.get('precision')} |")
            if suite == "short-term":
                ref = published("short-term", "M4 weighted average")[0]
                ref_text = f"{ref['smape']:.3f} / {ref['mase']:.3f} / {ref['owa']:.3f}"
                lines.append(f"| {row['cell']} | {spec['pred_len']} | {run} | "
                             f"{spec['variant']} | {seeds}"
                             f" | {_fmt(m.get('smape'))} | {_fmt(m.get('mase'))} | "
                             f"{_fmt(m.get('owa'))} | {ref_text} | {common}")
            else:
                found = published(suite, row["cell"], spec["pred_len"])
                ref_text = (f"{found[0]['mse']:.3f} / {found[0]['mae']:.3f} ({found[1]})"
                            if found else "—")
                lines.append(f"| {row['cell']} | {spec['seq_len']} | {spec['pred_len']} | "
                             f"{run} | {spec['variant']} | {spec['loss_setting']} | {seeds} | "
                             f"{_fmt(m.get('mse'))} | {_fmt(m.get('mae'))} | {ref_text} | "
                             f"{common}")
        lines.append("")
    backbones = sorted({f"`{r['spec']['backbone']}`: {r.get('backbone_about')}" for r in rows
                        if r.get("backbone_about")})
    if backbones:
        lines += ["Backbones: " + "; ".join(backbones) + ".", ""]
    lines += ["Peak memory, windows per second, the git commit, package versions and the machine "
              "of every run are in its JSON record.", ""]
    for plot in plots:
        lines += [f"![{plot}]({plot})", ""]
    return "\n".join(lines)


def _about(record: dict[str, Any]) -> str:
    spec = record["spec"]
    backbone = record.get("protocol", {}).get("backbone") or spec["backbone"]
    return f"backbone: {backbone}\ntraining: {_run_length(spec)}"


def plot_all(records: Sequence[dict[str, Any]], directory: Path) -> list[str]:
    """Write the three PNG plots into ``directory``; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if r.get("status") == "ok" and r.get("examples")]
    if not ok:
        return []
    written = []
    # 1. forecast against actual, with the last-value baseline, for a few test windows
    # a CALF run of the long-term suite if there is one, else any CALF run, else any trained one
    order = [lambda r: (VARIANTS[r["spec"]["variant"]].kind == "calf"
                        and r["spec"]["suite"] == "long-term"),
             lambda r: VARIANTS[r["spec"]["variant"]].kind == "calf",
             lambda r: not _untrained(r["spec"])]
    example = next((r for wanted in order for r in ok if wanted(r)), ok[0])
    ex = example["examples"]
    figure, axes = plt.subplots(1, len(ex["windows"]), figsize=(4.5 * len(ex["windows"]), 3.6),
                                squeeze=False)
    unit = "standardised" if example["spec"]["suite"] != "short-term" else "series units"
    for axis, row, past, actual, forecast in zip(axes[0], ex["windows"], ex["lookback"],
                                                 ex["actual"], ex["forecast"]):
        steps_past, steps = np.arange(-len(past), 0), np.arange(len(actual))
        axis.plot(steps_past, past, color="0.5", label="lookback")
        axis.plot(steps, actual, color="black", label="actual")
        axis.plot(steps, forecast, color="tab:red", label=example["spec"]["variant"])
        axis.plot(steps, [past[-1]] * len(actual), color="tab:blue", linestyle=":",
                  label="last value (baseline)")
        axis.set(title=f"test window {row}", xlabel="steps from the forecast origin",
                 ylabel=f"{ex['column']} ({unit})")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    figure.suptitle(f"{cell_name(example['spec'])} H={example['spec']['pred_len']}, "
                    f"{example['spec']['variant']}\n{_about(example)}", fontsize=9, y=1.12)
    figure.savefig(directory / "forecast.png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    written.append("forecast.png")
    # 2. the variants of every cell that has two or more, error bars over seeds
    cells = plot_cells([r for r in aggregate(records) if r["status"] == "ok"])
    for cell, members in cells.items():
        name = f"variants-{_slug(cell)}.png"
        metric = "owa" if cell[0] == "short-term" else "mse"
        figure, axis = plt.subplots(figsize=(max(5.0, 0.9 * len(members) + 2), 3.8))
        labels = [f"{m['spec']['variant']}\n({m['spec']['loss_setting']})"
                  if cell[0] == "few-shot" else m["spec"]["variant"] for m in members]
        means = [m["metrics"][metric][0] for m in members]
        stds = [m["metrics"][metric][1] for m in members]
        colours = {"calf": "tab:red", "darts": "tab:blue", "naive": "tab:gray"}
        bars = axis.bar(range(len(members)), means, yerr=stds, capsize=4,
                        color=[colours[VARIANTS[m["spec"]["variant"]].kind] for m in members])
        axis.bar_label(bars, labels=[f"{v:.3f}" for v in means], fontsize=7, padding=2)
        found = published(cell[0], cell[1], cell[3]) if metric == "mse" else None
        if found:  # (M4: the paper gives the average over the six groups only, not drawn)
            axis.axhline(found[0]["mse"], color="black", linestyle="--", linewidth=1,
                         label=f"published CALF, pre-trained GPT-2, 100 epochs ({found[1]})")
            axis.legend(fontsize=7, loc="upper left")
        axis.set_xticks(range(len(members)), labels, rotation=30, ha="right", fontsize=8)
        axis.set(ylabel=f"test {metric.upper()} (standardised)" if metric == "mse"
                 else "OWA (Naive2 = 1)", xlabel="variant",
                 title=f"{cell[0]} {cell[1]} L={cell[2]} H={cell[3]}, mean ± std over seeds\n"
                       f"backbone: {cell[4]}; training: {cell[5]}")
        figure.savefig(directory / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(name)
    # 3. cost against accuracy, for the trained variants of the cell with most variants
    if cells:
        cell, members = max(cells.items(), key=lambda item: len(item[1]))
        metric = "owa" if cell[0] == "short-term" else "mse"
        figure, axis = plt.subplots(figsize=(6.5, 4.2))
        for row in members:
            seconds = row["cost"].get("seconds_per_epoch")
            if seconds is None or metric not in row["metrics"]:
                continue
            mean, std = row["metrics"][metric]
            axis.errorbar(seconds, mean, yerr=std, fmt="o", color="tab:red", capsize=3)
            axis.annotate(row["spec"]["variant"], (seconds, mean), fontsize=7,
                          xytext=(4, 4), textcoords="offset points")
        axis.set_xscale("log")
        axis.set(xlabel="training time per epoch (s, log scale)",
                 ylabel=f"test {metric.upper()}" + (" (standardised)" if metric == "mse" else ""),
                 title=f"cost against accuracy: {cell[0]} {cell[1]} H={cell[3]}\n"
                       f"backbone: {cell[4]}; training: {cell[5]}")
        figure.savefig(directory / "cost.png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append("cost.png")
    return written


def _slug(cell: tuple) -> str:
    """A file-name part for a plot cell, e.g. ``long-term-ETTh1-96-96-gpt2-random-3-ep-bf16``."""
    text = "-".join(str(part) for part in cell[:6])
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").replace("--", "-")


def write_report(records: Sequence[dict[str, Any]], output: Path, command: str,
                 plot_dir: Path | None = None, plots: bool = True) -> Path:
    """Write the Markdown report to ``output`` (plots beside it, or into ``plot_dir``).

    If ``output`` exists and holds :data:`MARKER`, the text above the marker is kept and only
    what follows it is regenerated (so ``docs/results.md`` keeps its explanations).
    """
    plot_dir = plot_dir or output.parent
    written = plot_all(records, plot_dir) if plots else []
    relative = [str((plot_dir / name).relative_to(output.parent)) if plot_dir.is_relative_to(
        output.parent) else str(plot_dir / name) for name in written]
    output.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(records, command, relative)
    if output.is_file() and MARKER in output.read_text():  # keep the hand-written part above it
        head = output.read_text().split(MARKER, 1)[0]
        text = f"{head}{MARKER}\n\n{text}"
    output.write_text(text)
    return output
