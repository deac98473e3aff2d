#!/usr/bin/env bash
# Rebuild the best-of-n ladder's shipped artefacts on CPU (`make ladder`; docs/ladder.md):
#   1. the proxy's and the evaluation RM's answer pairs, labelled by the gold (`rlhf ladder pairs`),
#   2. both reward models, trained and shipped to data/reward_models/rm-ladder-{proxy,eval}/,
#   3. the ladder: 16 base samples per held-out prompt, scored by the proxy,
#   4. the reference: one more base sample per prompt on another seed (the study's reference).
# Every step resumes where it stopped; rerunning after a finished build does nothing.
#
# Sampling runs one single-threaded vLLM per core, pinned (`taskset`), each on every n-th prompt
# (`--shard i/n`); a later unsharded run merges the shards. On 2 busy cores this measured ~560
# tok/s against ~80 tok/s for one two-threaded vLLM (its threads wait on each other whenever a
# core is taken) and ~100 tok/s for the transformers sampler. Without .venv-vllm it falls back to
# transformers (`BACKEND=transformers`), which is slower but gives the same kind of samples.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
VLLM_VENV=${VLLM_VENV:-.venv-vllm}
CORES=${CORES:-$(nproc)}
BACKEND=${BACKEND:-vllm}
[ -x "$VLLM_VENV/bin/rlhf" ] || BACKEND=transformers
SAMPLER=$VENV/bin/rlhf
[ "$BACKEND" = vllm ] && SAMPLER=$VLLM_VENV/bin/rlhf
SAMPLING=(--backend "$BACKEND" --dtype bfloat16 --max-new-tokens 128 --threads 0)
LADDER=data/ladder/smollm2-rm-ladder-proxy.jsonl.gz
REFERENCE=data/ladder/smollm2-base-ref.jsonl.gz
PROXY=data/reward_models/rm-ladder-proxy

# One pinned single-threaded sampler per core, each on its shard; waits for all of them.
sharded() {
  local pids=()
  for ((i = 0; i < CORES; i++)); do
    taskset -c "$i" env OMP_NUM_THREADS=1 VLLM_CPU_OMP_THREADS_BIND=nobind \
      "$SAMPLER" "$@" --shard "$i/$CORES" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

for role in proxy eval; do
  sharded ladder pairs "${SAMPLING[@]}" --batch-size 48 --only "$role"
done
# Merge the shards and label; train and ship both RMs unless both are shipped already.
TRAIN=--train
if [ -f "$PROXY/report.json" ] && [ -f data/reward_models/rm-ladder-eval/report.json ]; then
  TRAIN=--no-train
fi
"$VENV/bin/rlhf" ladder pairs --threads 0 "$TRAIN"

sharded ladder build --n-max 16 --reward-model "$PROXY" "${SAMPLING[@]}" --chunk 4 --out "$LADDER"
"$SAMPLER" ladder build --n-max 16 --reward-model "$PROXY" "${SAMPLING[@]}" --chunk 4 \
  --out "$LADDER"
sharded ladder build --n-max 1 --seed 1 --reward-model "$PROXY" "${SAMPLING[@]}" --chunk 16 \
  --out "$REFERENCE"
"$SAMPLER" ladder build --n-max 1 --seed 1 --reward-model "$PROXY" "${SAMPLING[@]}" --chunk 16 \
  --out "$REFERENCE"
echo "ladder ready: $LADDER and $REFERENCE (rlhf ladder import, or make demo)"
