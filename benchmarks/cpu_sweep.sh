#!/usr/bin/env bash
# The CPU sweep published in docs/results.md (two cores; hours). Resumable: finished runs, keyed
# by their whole configuration, are skipped, and each finished record is committed on its own.
#   bash benchmarks/cpu_sweep.sh            # from the repository root, with .venv set up
set -u
BENCH="${BENCH:-.venv/bin/calf-bench}"
R=(--records-dir benchmarks/records --commit-records --output-dir bench-cpu --progress)
# What differs from the paper (docs/results.md): 3 epochs and bf16-mixed for the long-term,
# few-shot and zero-shot runs; M4 keeps its protocol's 200 epochs (one step each).
P=(--trainer-kwargs '{"precision": "bf16-mixed"}')
E=(--max-epochs 3 "${P[@]}")
SEEDS=(--seeds 2021,2022,2023)
# 1. ETTh1 long-term H=96: GPT-2 small's architecture with random weights, its three ablations,
#    the darts baselines and the naive ones
"$BENCH" run --suite long-term --datasets ETTh1 --horizons 96 --backbone gpt2-random \
  --variants random-init,no-llm,llm2attn,llm2trsf,dlinear,nlinear,tide,seasonal-naive,last-value \
  "${SEEDS[@]}" "${E[@]}" "${R[@]}" || echo "step 1 failed" >&2
# 2. ETTh1 few-shot 10 %, H=96, the reference's loss setting and CALF's full loss
"$BENCH" run --suite few-shot --datasets ETTh1 --horizons 96 --percents 10 --backbone gpt2-random \
  --variants random-init,nlinear,last-value "${SEEDS[@]}" "${E[@]}" "${R[@]}" || echo "step 2 failed" >&2
# 3. MiniLM-L6: pre-trained against random init
"$BENCH" run --suite long-term --datasets ETTh1 --horizons 96 --backbone minilm \
  --variants calf,random-init "${SEEDS[@]}" "${E[@]}" "${R[@]}" || echo "step 3 failed" >&2
# 4. M4 Hourly at the protocol's epochs
"$BENCH" run --suite short-term --datasets Hourly --backbone gpt2-random \
  --variants random-init,no-llm,seasonal-naive,last-value "${SEEDS[@]}" "${P[@]}" "${R[@]}" \
  || echo "step 4 failed" >&2
# 5. zero-shot ETTh1 -> ETTm2, H=96
"$BENCH" run --suite zero-shot --pairs 'ETTh1->ETTm2' --horizons 96 --backbone gpt2-random \
  --variants random-init,nlinear,last-value "${SEEDS[@]}" "${E[@]}" "${R[@]}" || echo "step 5 failed" >&2
# 6. issue 12's accuracy evidence at full data: step 1's CALF again in float32 (same seeds)
"$BENCH" run --suite long-term --datasets ETTh1 --horizons 96 --backbone gpt2-random \
  --variants random-init "${SEEDS[@]}" --max-epochs 3 --trainer-kwargs '{"precision": "32-true"}' \
  "${R[@]}" || echo "step 6 failed" >&2
# the page and its plots
"$BENCH" report --records-dir benchmarks/records --output docs/results.md \
  --plot-dir docs/_static/results
