"""Speed, peak memory and checkpoint size of CALF on the CPU (full-size GPT-2 architecture).

Measures, for the ETTh1 shape (M=7 variates, L=H=96), the ECL shape (M=321) and the Traffic
shape (M=862), in float32 and (``--precision 32,bf16``) bf16 mixed precision:

* training windows/s: one step is the real recipe, ``model(x, with_text_branch=True)``,
  :func:`calf_forecaster.losses.calf_loss`, ``backward`` and the Adam step of
  :func:`calf_forecaster.training.build_optimizer`, in train mode (dropout on); in bf16 the
  forward pass and the loss run under ``torch.autocast(bfloat16)`` with float32 master weights,
  gradients and Adam, as Lightning's ``precision="bf16-mixed"``;
* prediction windows/s: :meth:`CALF.predict` (temporal branch only) in eval mode under
  ``torch.inference_mode`` (and the same autocast in bf16);
* the matrix-product FLOPs one window costs (:func:`flops_per_window`, from the shapes), the
  rate they were done at, and the fraction of this machine's measured matrix-product rate IN THE
  SAME PRECISION (:func:`matmul_gflops`, a (2048 x 768) @ (768 x 3072) product timed right before
  and after the timed steps): how close to the hardware's limit the step runs;
* peak memory: the peak resident set size (``getrusage`` ``ru_maxrss``) of a fresh process that
  builds the model and runs one configuration, beside the resident size right after building the
  model, so that the increment of training itself is visible;
* checkpoint size: :func:`calf_forecaster.persistence.save_calf` of a model whose backbone is
  loaded as *pre-trained* (a randomly initialised GPT-2 small written with ``save_pretrained``), so
  that only the non-backbone state is saved, exactly as for the real ``gpt2``; and, for comparison,
  of a ``pretrained=False`` model, which must also save its random backbone.

The backbone is GPT-2 small's architecture (``save_backbone_config``) with random weights: no
download is needed. Every configuration runs in its own subprocess, so its peak memory is its
own. Timings are the median of the timed steps after warm-up steps; the CPU time used by other
processes during the timed steps is reported, because other work on the machine slows the
figures, and so is the calibration, because contention on the host of a virtual machine,
invisible from inside it, slows them too. Everything reported is measured by this run on this
machine; the authors' implementation appears only as figures measured elsewhere
(:data:`AUTHORS_MEASURED_ELSEWHERE`), never as a ratio.

Usage::

    python benchmarks/speed.py                  # everything (about 8 minutes on an idle machine)
    python benchmarks/speed.py --quick          # fewer steps (about 4 minutes)
    python benchmarks/speed.py --only etth1 --json speed.json
    python benchmarks/speed.py --only etth1 --repeat 5   # median and range of 5 runs each
    python benchmarks/speed.py --only traffic --precision 32,bf16 --no-checkpoint

The markdown table goes to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import median
from typing import Any

GIB = 1024 ** 3
MIB = 1024 ** 2
SEQ_LEN = PRED_LEN = 96
OUT_OF_MEMORY_EXIT = 3
IDLE_FRACTION = 0.1  # the machine counts as idle below 10% CPU use

#: Shapes of the benchmark: variates M and the loss the recipe uses for that data set (docs/method.md §3).
SHAPES: dict[str, dict[str, Any]] = {
    "etth1": {"n_variates": 7, "loss": "l1"},
    "ecl": {"n_variates": 321, "loss": "smooth_l1"},
    "traffic": {"n_variates": 862, "loss": "smooth_l1"},
}
#: Precisions of ``--precision``: ``32`` float32; ``bf16`` ``torch.autocast(bfloat16)`` around
#: the forward pass (and the loss), float32 master weights and optimiser, as Lightning's
#: ``precision="bf16-mixed"``.
PRECISIONS = ("32", "bf16")


@dataclass(frozen=True)
class Case:
    """One measurement, run in a fresh process."""

    shape: str  # key of SHAPES
    task: str  # "train" or "predict"
    batch_size: int  # windows per step
    warmup: int  # untimed steps first
    steps: int  # timed steps
    precision: str = "32"  # key of PRECISIONS

    @property
    def label(self) -> str:
        return f"{self.shape} {self.task} b{self.batch_size} {self.precision}"


#: The authors' implementation, MEASURED ELSEWHERE: figures quoted in the performance issue for a
#: 2-core AMD EPYC virtual machine of the previous kind (Zen 3, AVX2, no AVX-512 BF16), float32,
#: same shapes, hard-coded here on 2026-11-24 (commit d350d8d) and never re-measured by this
#: script. They are printed apart, as context, never divided into this machine's figures.
AUTHORS_MEASURED_ELSEWHERE = {
    ("etth1", "train", 32): "20.0 windows/s",
    ("etth1", "train", 256): "20.0 windows/s, 7.1 GB",
    ("etth1", "predict", 256): "52.0 windows/s",
    ("etth1", "predict", 1): "about 70 ms per window",
    ("ecl", "train", 32): "out of memory (batch 16: 0.81 windows/s, 13 GB)",
    ("ecl", "predict", 32): "1.38 windows/s",
}

#: GPT-2 small's shapes: width D, blocks K kept, and CALF's defaults (docs/method.md).
GPT2_SMALL = {"d_model": 768, "n_layers": 6, "encoder_ff_dim": 2048, "n_prototypes": 500,
              "lora_r": 8}


def flops_per_window(n_variates: int, task: str, batch_size: int = 1, seq_len: int = SEQ_LEN,
                     pred_len: int = PRED_LEN, d_model: int = 768, n_layers: int = 6,
                     encoder_ff_dim: int = 2048, n_prototypes: int = 500, lora_r: int = 8,
                     ) -> dict[str, float]:
    """Matrix-product FLOPs of one window (2 per multiply-add), forward and backward.

    With M variates (tokens), L = seq_len, H = pred_len, D = d_model, K blocks, F the encoder's
    feed-forward width, P prototypes, r the LoRA rank and B the batch (the prototypes' key and
    value projections run once per batch)::

        embed   = 2 M L D                              token embedding, L -> D
        encoder = M (8 D^2 + 4 D F) + 4 M^2 D          one post-norm encoder layer across variates
        block   = 24 M D^2 + 4 M^2 D                   one GPT-2 block: QKV 6, out 2, MLP 16 M D^2;
                                                       scores and weighted sum 4 M^2 D
        lora    = 8 M D r                              LoRA on c_attn (D -> r -> 3D), temporal only
        head    = 2 M D H
        predict = embed + encoder + K (block + lora) + head
        train forward = predict + cross + K block + head + 4 (K + 1) M D^2
            cross = 4 M D^2 + 4 M P D + 4 P D^2 / B    query, out; scores and sum over P;
                                                       the prototypes' key and value
            K block, head: the textual branch; 4 (K+1) M D^2: the 2 (K+1) feature projections

    Backward: a product costs its forward FLOPs once per operand that needs a gradient, so 2x
    for trainable weights and for attention (both operands are activations), 1x for the frozen
    backbone's weights (input gradient only: blocks = 16 M D^2 of the 24, + 8 M^2 D), 1x for
    the token embedding and the prototypes' key/value (their inputs need none). At GPT-2 small
    and M = 7 this gives backward ~1.2x forward, so training ~2.2x (not the ~3x of a network that
    trains every weight). Tested against ``torch.utils.flop_counter`` on a tiny shape.

    Returns
    -------
    dict
        ``forward`` and ``backward`` FLOPs per window, and ``total`` (their sum; prediction:
        the forward only).
    """
    m, d, k = n_variates, d_model, n_layers
    embed = 2 * m * seq_len * d
    encoder_weights, attention = m * (8 * d * d + 4 * d * encoder_ff_dim), 4 * m * m * d
    block_weights = 24 * m * d * d
    lora = 8 * m * d * lora_r
    head = 2 * m * d * pred_len
    predict = embed + encoder_weights + attention + k * (block_weights + attention + lora) + head
    if task == "predict":
        return {"forward": float(predict), "backward": 0.0, "total": float(predict)}
    cross_trainable = 4 * m * d * d + 4 * m * n_prototypes * d  # query, out; scores, sum
    cross_prototypes = 4 * n_prototypes * d * d / batch_size  # key and value of the P prototypes
    features = 4 * (k + 1) * m * d * d
    forward = (predict + cross_trainable + cross_prototypes + k * (block_weights + attention)
               + head + features)
    backward = (embed + 2 * (encoder_weights + attention)  # embedding: weight gradient only
                + k * (block_weights + 2 * attention + 2 * lora) + 2 * head  # temporal branch
                + 2 * cross_trainable + cross_prototypes
                + k * (block_weights + 2 * attention) + 2 * head  # textual branch
                + 2 * features)
    return {"forward": float(forward), "backward": float(backward),
            "total": float(forward + backward)}


def cases(quick: bool, only: str | None, precisions: tuple[str, ...] = ("32",)) -> list[Case]:
    """The measurements to run in every precision, fewest steps with ``quick``."""
    table = [
        # shape, task, batch, (warmup, steps) full, (warmup, steps) quick
        ("etth1", "train", 32, (3, 12), (2, 4)),
        ("etth1", "train", 256, (2, 5), (1, 2)),
        ("etth1", "predict", 256, (2, 10), (1, 3)),
        ("ecl", "train", 1, (1, 1), (1, 1)),  # memory probe: with batch 32, what batch fits
        ("ecl", "train", 32, (1, 2), (1, 1)),
        ("ecl", "predict", 32, (1, 3), (1, 2)),
        ("traffic", "train", 1, (1, 1), (1, 1)),  # memory probe
        ("traffic", "train", 8, (1, 3), (1, 1)),  # the reference's Traffic batch
        ("traffic", "predict", 8, (1, 3), (1, 2)),
    ]
    return [Case(shape, task, batch, *(fast if quick else full), precision)
            for precision in precisions
            for shape, task, batch, full, fast in table if only in (None, shape)]


# ---------------------------------------------------------------------- measurement (worker side)


def _rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _machine_busy_seconds() -> float:
    """CPU seconds spent by all processes on the machine since boot (from /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start_memory_watchdog(limit_bytes: int) -> None:
    """End this process with exit code 3 when its resident size exceeds ``limit_bytes``.

    A configuration that does not fit must not push the machine into its out-of-memory killer,
    which could end other people's processes; it is reported as "out of memory" instead.
    """

    def watch() -> None:
        while True:
            if _rss_bytes() > limit_bytes:
                print(json.dumps({"out_of_memory": True, "limit_gb": limit_bytes / GIB,
                                  "peak_rss_gb": _peak_rss_bytes() / GIB}), flush=True)
                os._exit(OUT_OF_MEMORY_EXIT)
            time.sleep(0.25)  # rarely: a busy poller steals the GIL from the timed loop

    threading.Thread(target=watch, daemon=True).start()


#: The calibration product: (2048 x 768) @ (768 x 3072), GPT-2 small's MLP input projection at
#: 2048 tokens (a batch-32 ETTh1 step multiplies (224 x 768) and (448 x 768) blocks of this kind).
CALIBRATION_SHAPE = (2048, 768, 3072)


def matmul_gflops(dtype: Any = None, seconds: float = 1.0, device: str = "cpu") -> float:
    """Matrix-product speed of this machine now in ``dtype``, in GFLOP/s: the calibration figure.

    Times ``torch.mm`` of :data:`CALIBRATION_SHAPE` in ``dtype`` (default float32; bfloat16
    uses the CPU's AVX-512 BF16 / AMX units where it has them, a GPU's tensor cores on
    ``device="cuda"``) for ``seconds``. Host contention on a virtual machine lowers it and every speed figure together,
    so reading both tells a slow machine from slow code, and the fraction of it that a step
    reaches says how close to the hardware's limit the code runs.
    """
    import torch

    dtype = dtype or torch.float32
    rows, inner, columns = CALIBRATION_SHAPE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=generator).to(device, dtype)
    b = torch.randn(inner, columns, generator=generator).to(device, dtype)
    for _ in range(3):
        torch.mm(a, b)
    _synchronize(device)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(1 if device == "cpu" else 20):
            torch.mm(a, b)
            count += 1
        _synchronize(device)
    elapsed = time.perf_counter() - started
    return 2 * rows * inner * columns * count / elapsed / 1e9


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def gemm_gflops(seconds: float = 1.0) -> float:
    """Float32 calibration (:func:`matmul_gflops`), kept for older callers."""
    return matmul_gflops(None, seconds)


def _build_model(backbone_dir: str, shape: str, pretrained: bool = False) -> Any:
    import torch

    from calf_forecaster import CALF, CALFConfig

    torch.manual_seed(0)
    config = CALFConfig(seq_len=SEQ_LEN, pred_len=PRED_LEN, backbone=backbone_dir,
                        pretrained=pretrained)
    return CALF.from_pretrained(config)


def run_case(case: Case, backbone_dir: str) -> dict[str, Any]:
    """Build the model, run ``case`` and return its figures (called in a fresh process)."""
    import torch

    from calf_forecaster.config import TrainingConfig
    from calf_forecaster.losses import calf_loss
    from calf_forecaster.training import build_optimizer

    rss_start = _rss_bytes()
    started = time.perf_counter()
    model = _build_model(backbone_dir, case.shape)
    build_s = time.perf_counter() - started
    rss_model = _rss_bytes()
    peak_build = _peak_rss_bytes()

    n_variates = SHAPES[case.shape]["n_variates"]
    generator = torch.Generator().manual_seed(1)
    n_batches = 2  # alternate two batches: no caching effect from reusing one tensor
    xs = [torch.randn(case.batch_size, SEQ_LEN, n_variates, generator=generator)
          for _ in range(n_batches)]
    ys = [torch.randn(case.batch_size, PRED_LEN, n_variates, generator=generator)
          for _ in range(n_batches)]

    # bf16: autocast around forward and loss, float32 weights, gradients and Adam (bf16-mixed)
    dtype = torch.bfloat16 if case.precision == "bf16" else torch.float32
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case.precision == "bf16")
    if case.task == "train":
        model.train()
        recipe = TrainingConfig(batch_size=case.batch_size, loss=SHAPES[case.shape]["loss"])
        optimizer, _ = build_optimizer(model, recipe)

        def step(index: int) -> None:
            x, y = xs[index % n_batches], ys[index % n_batches]
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                parts = calf_loss(model(x, with_text_branch=True), y, recipe)
            parts.total.backward()
            optimizer.step()
    else:
        model.eval()

        def step(index: int) -> None:
            with torch.inference_mode(), autocast:
                model.predict(xs[index % n_batches])

    for index in range(case.warmup):
        step(index)
    gemm_before = matmul_gflops(dtype)
    times = []
    busy_before, own_before = _machine_busy_seconds(), _own_cpu_seconds()
    timed_started = time.perf_counter()
    for index in range(case.steps):
        tick = time.perf_counter()
        step(case.warmup + index)
        times.append(time.perf_counter() - tick)
    timed_wall = time.perf_counter() - timed_started
    own = _own_cpu_seconds() - own_before
    others = (_machine_busy_seconds() - busy_before) - own
    gemm_after = matmul_gflops(dtype)
    step_s = median(times)
    flops = flops_per_window(n_variates, case.task, case.batch_size)
    calibration = (gemm_before + gemm_after) / 2
    return {
        **asdict(case),
        "n_variates": n_variates,
        "windows_per_s": case.batch_size / step_s,
        "best_windows_per_s": case.batch_size / min(times),
        "step_s": step_s,
        "step_times_s": times,
        "peak_rss_gb": _peak_rss_bytes() / GIB,
        "model_rss_gb": rss_model / GIB,
        "interpreter_rss_gb": rss_start / GIB,
        "build_peak_rss_gb": peak_build / GIB,
        "increment_gb": (_peak_rss_bytes() - rss_model) / GIB,
        "build_s": build_s,
        "cpu_s_per_step": own / case.steps,
        "other_processes_cores": max(others, 0.0) / timed_wall,
        "threads": torch.get_num_threads(),
        "gemm_gflops": calibration,  # in the case's precision
        "gemm_gflops_before_after": [gemm_before, gemm_after],
        "calibration_dtype": str(dtype).replace("torch.", ""),
        "flops_per_window": flops,
        "achieved_gflops": flops["total"] * case.batch_size / step_s / 1e9,
        "fraction_of_calibration": flops["total"] * case.batch_size / step_s / 1e9 / calibration,
    }


def run_checkpoint(backbone_config_dir: str, workdir: str) -> dict[str, Any]:
    """Checkpoint sizes of ``save_calf`` for a pre-trained-style and a random backbone."""
    import torch
    from transformers import GPT2Config, GPT2Model

    from calf_forecaster import CALF, CALFConfig
    from calf_forecaster.persistence import save_calf

    def size(directory: Path) -> int:
        return sum(path.stat().st_size for path in directory.iterdir() if path.is_file())

    root = Path(workdir)
    torch.manual_seed(0)
    gpt2_dir = root / "random-gpt2-small"  # stands in for the real "gpt2": 12 blocks, 124M params
    GPT2Model(GPT2Config()).save_pretrained(gpt2_dir)
    pretrained = CALF.from_pretrained(CALFConfig(seq_len=SEQ_LEN, pred_len=PRED_LEN, backbone=str(gpt2_dir)))
    save_calf(pretrained, root / "calf-pretrained")
    n_trainable = sum(p.numel() for p in pretrained.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in pretrained.parameters())
    del pretrained
    random_model = _build_model(backbone_config_dir, "etth1", pretrained=False)
    save_calf(random_model, root / "calf-random")
    return {
        "pretrained_backbone_mb": size(root / "calf-pretrained") / MIB,
        "random_backbone_mb": size(root / "calf-random") / MIB,
        "hf_backbone_mb": size(gpt2_dir) / MIB,
        "trainable_parameters": n_trainable,
        "total_parameters": n_total,
    }


def _worker(arguments: dict[str, Any]) -> None:
    if arguments.get("memory_limit_gb"):
        _start_memory_watchdog(int(arguments["memory_limit_gb"] * GIB))
    if arguments["job"] == "prepare":  # fills the prototype cache, so no case pays for the SVD
        started = time.perf_counter()
        _build_model(arguments["backbone"], "etth1")
        result: dict[str, Any] = {"prepare_s": time.perf_counter() - started}
    elif arguments["job"] == "checkpoint":
        result = run_checkpoint(arguments["backbone"], arguments["workdir"])
    else:
        result = run_case(Case(**arguments["case"]), arguments["backbone"])
    print(json.dumps(result))


# ---------------------------------------------------------------------- orchestration (parent side)


def _machine_busy_fraction(seconds: float = 3.0) -> float:
    """Fraction of the machine's CPU time in use over ``seconds``."""
    before, started = _machine_busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (_machine_busy_seconds() - before) / ((time.perf_counter() - started) * os.cpu_count())


def wait_for_idle(timeout: float) -> float:
    """Wait up to ``timeout`` seconds for the machine to be idle; return the last busy fraction."""
    deadline = time.monotonic() + timeout
    busy = _machine_busy_fraction()
    while busy >= IDLE_FRACTION and time.monotonic() < deadline:
        busy = _machine_busy_fraction()
    return busy


def _spawn(arguments: dict[str, Any], environment: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(arguments)],
        env=environment, capture_output=True, text=True,
    )
    if completed.returncode == OUT_OF_MEMORY_EXIT:
        return {**arguments.get("case", {}), **json.loads(completed.stdout.strip().splitlines()[-1])}
    if completed.returncode != 0:
        raise RuntimeError(f"worker {arguments} failed with exit code {completed.returncode}:\n"
                           f"{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, library versions, threads, commit."""
    import peft
    import torch
    import transformers

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    import calf_forecaster

    return {
        "package": str(Path(calf_forecaster.__file__).parent),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "commit": commit,
        "load_average": os.getloadavg(),
    }


def median_run(case_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median speed (the lower one of two middles), with every run's speed."""
    measured = sorted((r for r in case_runs if not r.get("out_of_memory")),
                      key=lambda r: r["windows_per_s"])
    if len(measured) < len(case_runs):  # out of memory at least once: report that
        return next(r for r in case_runs if r.get("out_of_memory"))
    chosen = measured[(len(measured) - 1) // 2]
    return {**chosen, "runs_windows_per_s": [r["windows_per_s"] for r in measured],
            "runs_gemm_gflops": [r["gemm_gflops"] for r in measured]}


def batches_that_fit(results: list[dict[str, Any]], limit_gb: float) -> list[dict[str, Any]]:
    """The largest training batch of each shape and precision that fits in ``limit_gb``.

    Training memory is linear in the batch (the activations of every window, on top of the
    model, gradients and Adam's state), so two measured batches of one shape and precision give
    the line; the largest batch under ``limit_gb`` is read off it. Shapes measured at one batch
    only (ETTh1) are left out.
    """
    found = []
    by_shape: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        if r["task"] == "train" and not r.get("out_of_memory"):
            by_shape.setdefault((r["shape"], r.get("precision", "32")), []).append(r)
    for (shape, precision), runs in by_shape.items():
        runs = sorted(runs, key=lambda r: r["batch_size"])
        if len(runs) < 2 or runs[0]["batch_size"] == runs[-1]["batch_size"]:
            continue
        small, large = runs[0], runs[-1]
        per_window = ((large["peak_rss_gb"] - small["peak_rss_gb"])
                      / (large["batch_size"] - small["batch_size"]))
        fixed = small["peak_rss_gb"] - per_window * small["batch_size"]
        largest = int((limit_gb - fixed) // per_window) if per_window > 0 else None
        found.append({"shape": shape, "precision": precision, "per_window_gb": per_window,
                      "fixed_gb": fixed, "measured": [small["batch_size"], large["batch_size"]],
                      "largest_batch": largest, "limit_gb": limit_gb})
    return found


def markdown(results: list[dict[str, Any]], checkpoint: dict[str, Any] | None,
             machine: dict[str, Any], limit_gb: float | None = None) -> str:
    """The results as markdown tables (figures, authors' figures measured elsewhere, checkpoint,
    machine)."""
    lines = [
        "| shape | task | batch | precision | windows/s | runs: min-max | GFLOP/window "
        "| achieved GFLOP/s | calibration GFLOP/s (same precision) | fraction of calibration "
        "| peak RSS GB | after build GB | increment GB | CPU s/step | others' load (cores) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        head = (f"| {r['shape']} (M={SHAPES[r['shape']]['n_variates']}) | {r['task']} "
                f"| {r['batch_size']} | {r.get('precision', '32')} ")
        if r.get("out_of_memory"):
            lines.append(head + f"| out of memory (> {r['limit_gb']:.1f} GB) | - | - | - | - | - "
                         f"| > {r['limit_gb']:.1f} | - | - | - | - |")
            continue
        speeds = r.get("runs_windows_per_s", [])
        spread = (f"{min(speeds):.2f}-{max(speeds):.2f} ({len(speeds)} runs)"
                  if len(speeds) > 1 else "-")
        lines.append(
            head + f"| {r['windows_per_s']:.2f} | {spread} "
            f"| {r['flops_per_window']['total'] / 1e9:.2f} | {r['achieved_gflops']:.0f} "
            f"| {r['gemm_gflops']:.0f} ({r['calibration_dtype']}) "
            f"| {r['fraction_of_calibration']:.0%} | {r['peak_rss_gb']:.2f} "
            f"| {r['model_rss_gb']:.2f} | {r['increment_gb']:.2f} | {r['cpu_s_per_step']:.2f} "
            f"| {r['other_processes_cores']:.2f} |"
        )
    fits = batches_that_fit(results, limit_gb) if limit_gb else []
    if fits:
        lines += ["", f"Largest training batch within {limit_gb:.1f} GB (peak RSS is linear in "
                  "the batch: the line through the two measured batches):", "",
                  "| shape | precision | measured batches | GB per window | GB at batch 0 "
                  "| largest batch that fits |", "|---|---|---|---:|---:|---:|"]
        lines += [f"| {f['shape']} | {f['precision']} | {f['measured'][0]}, {f['measured'][1]} "
                  f"| {f['per_window_gb']:.2f} | {f['fixed_gb']:.2f} | {f['largest_batch']} |"
                  for f in fits]
    lines += ["", "The authors' implementation, measured elsewhere (figures quoted in the "
              "performance issue for a 2-core AMD EPYC of the previous kind, Zen 3 AVX2, float32; "
              "not measured by this run, so no ratio is formed):", "",
              "| shape | task | batch | authors' figure (measured elsewhere) |", "|---|---|---:|---|"]
    lines += [f"| {shape} | {task} | {batch} | {figure} |"
              for (shape, task, batch), figure in AUTHORS_MEASURED_ELSEWHERE.items()]
    if checkpoint:
        lines += [
            "",
            "| checkpoint (`save_calf`) | size MB |",
            "|---|---:|",
            f"| pre-trained backbone (only non-backbone state saved) "
            f"| {checkpoint['pretrained_backbone_mb']:.1f} |",
            f"| random backbone (`pretrained=False`: the backbone is saved too) "
            f"| {checkpoint['random_backbone_mb']:.1f} |",
            f"| for comparison: the GPT-2 small backbone itself (`save_pretrained`) "
            f"| {checkpoint['hf_backbone_mb']:.1f} |",
            "",
            f"Parameters: {checkpoint['total_parameters'] / 1e6:.2f}M in memory, "
            f"{checkpoint['trainable_parameters'] / 1e6:.2f}M trainable.",
        ]
    lines += [
        "",
        f"Machine: {machine['cpu']}, {machine['usable_cores']} cores, {machine['memory_gb']} GiB; "
        f"Python {machine['python']}, torch {machine['torch']} ({machine['cpu_capability']}, "
        f"{machine['torch_threads']} threads), transformers {machine['transformers']}, "
        f"peft {machine['peft']}; calf_forecaster from {machine['package']}, "
        f"commit {machine['commit'] or '?'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer warm-up and timed steps")
    parser.add_argument("--only", choices=sorted(SHAPES), help="run one shape only")
    parser.add_argument("--no-checkpoint", action="store_true",
                        help="skip the checkpoint-size measurement")
    parser.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each measurement wait up to SECONDS for the machine to be "
                             "idle (other processes slow every figure down)")
    parser.add_argument("--memory-limit-gb", type=float, default=None,
                        help="report a configuration as out of memory above this resident size "
                             "(default: physical memory minus 1.5 GB)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure every configuration N times (fresh processes, interleaved) "
                             "and report the median run with the range")
    parser.add_argument("--precision", default="32",
                        help="comma-separated precisions to measure, of "
                             f"{', '.join(PRECISIONS)} (e.g. 32,bf16)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="measure every selected case at batch N instead (e.g. to see which "
                             "batch of a wide shape fits in memory)")
    parser.add_argument("--task", choices=("train", "predict"), help="one task only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    precisions = tuple(p.strip() for p in args.precision.split(","))
    if not precisions or any(p not in PRECISIONS for p in precisions):
        parser.error(f"--precision takes a comma-separated list of {PRECISIONS}, got "
                     f"{args.precision!r}")
    if args.worker:
        _worker(json.loads(args.worker))
        return 0

    machine = machine_info()
    memory_limit_gb = args.memory_limit_gb or machine["memory_gb"] - 1.5
    checkpoint = None
    with tempfile.TemporaryDirectory(prefix="calf-speed-") as workdir:
        from calf_forecaster.backbone import save_backbone_config

        backbone = str(save_backbone_config(Path(workdir) / "gpt2-config"))
        environment = {**os.environ, "CALF_FORECASTER_CACHE": str(Path(workdir) / "cache")}
        print("preparing (word prototypes of the random backbone)", file=sys.stderr, flush=True)
        _spawn({"job": "prepare", "backbone": backbone}, environment)
        runs: dict[str, list[dict[str, Any]]] = {}
        for repetition in range(args.repeat):  # interleaved, so that drift touches every case
            labels: set[str] = set()
            for case in cases(args.quick, args.only, precisions):
                if args.task and case.task != args.task:
                    continue
                if args.batch_size:
                    case = replace(case, batch_size=args.batch_size)
                if case.label in labels:  # --batch-size makes the memory probe a duplicate
                    continue
                labels.add(case.label)
                if args.wait_idle:
                    busy = wait_for_idle(args.wait_idle)
                    print(f"machine busy {busy:.0%} before {case.label}", file=sys.stderr,
                          flush=True)
                print(f"measuring {case.label} ({case.warmup} warm-up + {case.steps} timed steps, "
                      f"run {repetition + 1} of {args.repeat})", file=sys.stderr, flush=True)
                result = _spawn({"job": "case", "case": asdict(case), "backbone": backbone,
                                 "memory_limit_gb": memory_limit_gb}, environment)
                if result.get("out_of_memory"):
                    print(f"  out of memory (> {memory_limit_gb:.1f} GB)", file=sys.stderr,
                          flush=True)
                else:
                    print(f"  {result['windows_per_s']:.2f} windows/s, peak "
                          f"{result['peak_rss_gb']:.2f} GB, calibration "
                          f"{result['gemm_gflops']:.0f} GFLOP/s ({result['calibration_dtype']}), "
                          f"{result['fraction_of_calibration']:.0%} of it, others' load "
                          f"{result['other_processes_cores']:.2f} cores", file=sys.stderr,
                          flush=True)
                runs.setdefault(case.label, []).append(result)
        results = [median_run(case_runs) for case_runs in runs.values()]
        if not args.no_checkpoint:
            print("measuring checkpoint sizes", file=sys.stderr, flush=True)
            checkpoint = _spawn({"job": "checkpoint", "backbone": backbone, "workdir": workdir},
                                environment)
    table = markdown(results, checkpoint, machine, memory_limit_gb)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results,
                                         "checkpoint": checkpoint, "quick": args.quick,
                                         "memory_limit_gb": memory_limit_gb}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
