"""``calf-bench``: run suites and single runs, resume and shard sweeps, write reports.

Examples
--------
::

    calf-bench list --suite long-term --datasets ETTh1 --horizons 96
    calf-bench run --suite long-term --datasets ETTh1 --horizons 96 \\
        --variants calf,no-llm,nlinear,last-value --seeds 2021,2022,2023 --output-dir out
    calf-bench run ... --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
    calf-bench report --records-dir benchmarks/records --output docs/results.md
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from calf_forecaster.bench import grid, records, report, runners

logger = logging.getLogger("calf_forecaster.bench")


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in _list(text)]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from error


def _pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in _list(text):
        if "->" not in part:
            raise argparse.ArgumentTypeError(f"a pair looks like ETTh1->ETTm2, got {part!r}")
        source, target = (p.strip() for p in part.split("->"))
        pairs.append((source, target))
    return pairs


def _trainer_kwargs(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--trainer-kwargs must be a JSON object: {error}") \
            from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--trainer-kwargs must be a JSON object")
    return value


def _grid_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", type=_list, default=["long-term"],
                        help=f"comma-separated suites of {grid.SUITES}")
    parser.add_argument("--variants", type=_list, default=list(grid.DEFAULT_VARIANTS),
                        help=f"comma-separated variants of {tuple(grid.VARIANTS)}")
    parser.add_argument("--seeds", type=_ints, default=[2021], help="e.g. 2021,2022,2023")
    parser.add_argument("--datasets", type=_list, default=None,
                        help="data sets, M4 groups or zero-shot targets (default: the suite's)")
    parser.add_argument("--horizons", type=_ints, default=None, help="H (default: standard)")
    parser.add_argument("--seq-len", type=int, default=None, help="L (default: standard)")
    parser.add_argument("--percents", type=_ints, default=list(grid.FEW_SHOT_PERCENTS))
    parser.add_argument("--few-shot-losses", type=_list, default=list(grid.FEW_SHOT_LOSSES),
                        help="'reference' (output/feature weights 0) and/or 'full'")
    parser.add_argument("--pairs", type=_pairs, default=None, help="zero-shot, e.g. ETTh1->ETTm2")
    parser.add_argument("--backbone", default="gpt2",
                        help=f"aliases {tuple(grid.BACKBONE_ALIASES)}, a hub name or a directory")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap on epochs (default: the protocol's 100, M4 200)")
    parser.add_argument("--stride", type=int, default=1,
                        help="every n-th training window (1: the protocol)")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="smoke runs: first rows (M4: series), 70/10/20 split; not a result")
    parser.add_argument("--fast", action="store_true",
                        help="smoke run: tiny backbone, L=H=16, 1 epoch, 2000 rows, one seed")
    parser.add_argument("--trainer-kwargs", type=_trainer_kwargs, default={},
                        help='JSON for pytorch_lightning.Trainer, e.g. \'{"accelerator": "gpu"}\'')
    parser.add_argument("--shard", default="0/1", help="i/n: every n-th run of the sorted grid")


def expand(args: argparse.Namespace) -> list[grid.RunSpec]:
    """The sorted, sharded runs the arguments name."""
    if args.fast:
        args.backbone, args.max_epochs = "tiny", 1
        args.max_rows = args.max_rows or 2000
        args.seq_len = args.seq_len or 16
        args.horizons = args.horizons or [16]
        args.seeds = args.seeds[:1]
    specs = grid.expand_grid(
        args.suite, args.variants, args.seeds, args.datasets, args.horizons, args.seq_len,
        args.percents, args.pairs, args.few_shot_losses, backbone=args.backbone,
        max_epochs=args.max_epochs, stride=args.stride, max_rows=args.max_rows,
        trainer_kwargs=grid.canonical_json(args.trainer_kwargs))
    return grid.shard(specs, *grid.parse_shard(args.shard))


def _record_dirs(args: argparse.Namespace) -> list[Path]:
    dirs = [args.records_dir] if args.records_dir else []
    return [*dirs, args.output_dir / "records"]


def command_run(args: argparse.Namespace) -> int:
    """Run every unfinished spec; write records, the report and the plots."""
    specs = expand(args)
    record_dirs = _record_dirs(args)
    done = records.finished_keys(record_dirs)
    todo = [s for s in specs if s.key() not in done]
    logger.info("%d runs in the grid (shard %s), %d finished, %d to run", len(specs), args.shard,
                len(specs) - len(todo), len(todo))
    target = record_dirs[0]
    started_sweep = time.perf_counter()
    ran = 0
    for index, spec in enumerate(todo, start=1):
        elapsed = time.perf_counter() - started_sweep
        left = elapsed / (index - 1) * (len(todo) - index + 1) if index > 1 else None
        if args.progress:
            logger.info("[%d/%d] %s (elapsed %.0fs, left ~%s)", index, len(todo), spec.name,
                           elapsed, "?" if left is None else f"{left:.0f}s")
        started = time.time()
        body = runners.execute(spec, args.data_dir, args.download, args.output_dir / "cache")
        path = records.write_record(target, spec, records.make_record(spec, body, started))
        ran += 1
        if args.commit_records:
            records.commit_record(path, f"bench record: {spec.name}")
    collected = records.load_records(record_dirs)
    keys = {s.key() for s in specs}
    mine = [r for r in collected if r["key"] in keys]
    command = _report_command(record_dirs[0], args.output_dir / "report.md")
    report.write_report(mine, args.output_dir / "report.md", command)
    print(f"calf-bench: {ran} run(s) done, {len(specs) - len(todo)} skipped as finished; "
          f"report {args.output_dir / 'report.md'}")
    for row in report.aggregate(mine):
        metric = "owa" if "owa" in row["metrics"] else "mse"
        value = row["metrics"].get(metric)
        shown = f"{metric} {value[0]:.4f} ± {value[1]:.4f}" if value else row["status"]
        print(f"  {row['cell']} H{row['spec']['pred_len']} {row['spec']['variant']}: {shown}")
    return 0


def _report_command(records_dir: Path, output: Path, plot_dir: Path | None = None) -> str:
    plots = f" --plot-dir {shlex.quote(str(plot_dir))}" if plot_dir else ""
    return (f"calf-bench report --records-dir {shlex.quote(str(records_dir))} "
            f"--output {shlex.quote(str(output))}{plots}")


def command_report(args: argparse.Namespace) -> int:
    """Regenerate a report (Markdown and plots) from records."""
    collected = records.load_records([args.records_dir])
    if not collected:
        logger.error("no records in %s", args.records_dir)
        return 1
    plot_dir = args.plot_dir or args.output.parent
    command = _report_command(args.records_dir, args.output, args.plot_dir)
    if args.no_plots:
        command += " --no-plots"
    report.write_report(collected, args.output, command, plot_dir, plots=not args.no_plots)
    print(f"calf-bench: report of {len(collected)} records written to {args.output}")
    return 0


def command_list(args: argparse.Namespace) -> int:
    """Print the runs of the grid (key, finished or not, name)."""
    specs = expand(args)
    done = records.finished_keys([args.records_dir] if args.records_dir else [])
    for spec in specs:
        print(f"{spec.key()} {'done' if spec.key() in done else 'todo'} {spec.name}")
    print(f"{len(specs)} runs")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``calf-bench`` argument parser."""
    parser = argparse.ArgumentParser(prog="calf-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a suite or single runs")
    _grid_arguments(run)
    run.add_argument("--data-dir", type=Path, default=None,
                     help="data folder (default: the search order of calf_forecaster.paths)")
    run.add_argument("--download", action="store_true",
                     help="download missing canonical files (checked against SHA-256)")
    run.add_argument("--output-dir", type=Path, default=Path("bench-output"))
    run.add_argument("--records-dir", type=Path, default=None,
                     help="where records are written and resumed from (default: "
                          "<output-dir>/records)")
    run.add_argument("--commit-records", action="store_true",
                     help="git add + git commit each finished record (that file only)")
    run.add_argument("--progress", action="store_true", default=None,
                     help="progress on stderr (default: when stderr is a TTY)")
    run.set_defaults(handler=command_run)
    rep = sub.add_parser("report", help="Markdown report and plots from records")
    rep.add_argument("--records-dir", type=Path, required=True)
    rep.add_argument("--output", type=Path, required=True)
    rep.add_argument("--plot-dir", type=Path, default=None, help="default: beside --output")
    rep.add_argument("--no-plots", action="store_true",
                     help="Markdown only (e.g. for docs/, where PNGs are not committed)")
    rep.set_defaults(handler=command_report)
    lst = sub.add_parser("list", help="list the runs of a grid")
    _grid_arguments(lst)
    lst.add_argument("--records-dir", type=Path, default=None)
    lst.set_defaults(handler=command_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calf-bench`` and ``python -m calf_forecaster.bench``."""
    args = build_parser().parse_args(argv)
    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO if getattr(args, "progress", False) else logging.WARNING)
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        return 2
