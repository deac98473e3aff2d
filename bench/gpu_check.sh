#!/usr/bin/env bash
# The GPU check (issue 27): on a lent GPU machine, in under 8 minutes, the `gpu`-marked tests,
# a few PPO steps of SmolLM2 with LoRA in bf16, one checkpoint's evaluation on the 200 held-out
# prompts (128 new tokens, both reward models), then a table: step time, tokens per second,
# evaluation wall time, peak GPU memory.
#
# Here, once:  make gpu-wheels        (wheels the machine lacks + SmolLM2's config/tokenizer
#                                       into .gpu/, ignored by git; about 25 MB)
# There:       run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=560)
#
# No network there and its python3 (3.12, CUDA torch) is not this venv: the wheels go to
# /tmp/site with --no-deps (the machine's torch, tokenizers, accelerate stay). Each stage is its
# own process with its own time limit: a failure costs its row, never the table.
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-/tmp/gpu_check}
WORK=/tmp/gpu_check_work
rm -rf "$WORK"; mkdir -p "$WORK" "$OUT_DIR"
PY=${PYTHON:-python3}
LOG="$OUT_DIR/gpu_check.log"
say() { echo "[gpu_check $(date +%T)] $*" | tee -a "$LOG"; }

if [ "${GPU_CHECK_SMOKE:-0}" != 1 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
  if [ -d .gpu/wheels ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .gpu/wheels/*.whl >>"$LOG" 2>&1 || say "wheel install failed (see log)"
    export PYTHONPATH=/tmp/site:$PWD
  else
    say "no .gpu/wheels: run make gpu-wheels here and carry .gpu"
    export PYTHONPATH=$PWD
  fi
else
  PY=.venv/bin/python
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RLHF_DATA_DIR=$WORK/data
$PY -c "import torch, transformers, trl, peft; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__)" 2>&1 | tee -a "$LOG"

stage() {  # stage NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  say "$name (limit ${limit}s)"
  local start=$SECONDS
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  say "$name rc=$rc in $((SECONDS - start))s"
  if [ $rc -eq 0 ] && [ "$name" = tests ]; then
    local summary; summary=$(grep -E "passed|skipped|failed" "$LOG" | tail -n 1 | tr -d '=' | xargs)
    echo "{\"stage\": \"tests\", \"status\": \"$summary\", \"wall_s\": $((SECONDS - start))}" >>"$WORK/results.jsonl"
  elif [ $rc -ne 0 ]; then
    echo "{\"stage\": \"$name\", \"status\": \"failed rc=$rc\", \"wall_s\": $((SECONDS - start))}" >>"$WORK/results.jsonl"
    tail -n 5 "$LOG" | sed 's/^/    /'
  fi
}

stage tests 90 $PY -m pytest -q -m gpu -p no:cacheprovider tests/training/test_gpu.py
stage models 60 $PY bench/gpu_check.py models "$WORK"
stage ppo 150 $PY bench/gpu_check.py ppo "$WORK"
stage eval 150 $PY bench/gpu_check.py eval "$WORK"
$PY bench/gpu_check.py table "$WORK" | tee "$OUT_DIR/gpu_check_table.md"
cp "$WORK/results.jsonl" "$OUT_DIR/" 2>/dev/null || true
