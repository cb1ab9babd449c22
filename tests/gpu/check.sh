#!/usr/bin/env bash
# The GPU check: run on a CUDA machine from the repository root (JAX with CUDA installed).
#
#   OUT=gpu-check bash tests/gpu/check.sh
#
# 1. the device JAX sees; 2. `python -m nmrnn.bench` timings on the GPU (one row per experiment
# and model type, with the 10 seeds of an architecture in one program, and the seed scaling of
# the MWG NM-RNN); 3. the smoke pipeline end to end with training on the GPU (every figure).
# Everything is written under $OUT; each step has its own time limit so a slow step cannot
# take the others with it.  Needs snakemake importable (for step 3).
set -uo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # several jobs share one GPU
PY=${PYTHON:-python3}
T_BENCH=${T_BENCH:-120}
T_SEEDS=${T_SEEDS:-60}
T_SMOKE=${T_SMOKE:-240}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PY" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
} 2>&1 | tee "$OUT/device.txt"

start=$(date +%s)
rows=(mwg:nmrnn mwg:lrrnn mwg:lstm multitask:nmrnn multitask:lstm eft:nmrnn_5_18_8 eft:lstm)
timeout "$T_BENCH" "$PY" -m nmrnn.bench "${rows[@]/#/--only=}" --seeds 10 --steps 50 --chunks 2 \
    > "$OUT/bench.txt" 2>&1
echo "bench (${rows[*]}; S=10): rc $? in $(( $(date +%s) - start )) s" | tee -a "$OUT/device.txt"
start=$(date +%s)
timeout "$T_SEEDS" "$PY" -m nmrnn.bench --only mwg:nmrnn --seeds 1,10,50 --steps 50 --chunks 2 \
    > "$OUT/bench_seeds.txt" 2>&1
echo "bench (mwg:nmrnn S=1,10,50): rc $? in $(( $(date +%s) - start )) s" | tee -a "$OUT/device.txt"

start=$(date +%s)
timeout "$T_SMOKE" "$PY" -m snakemake --profile profiles/smoke --cores "${CORES:-16}" \
    --config training_env=cuda > "$OUT/smoke.txt" 2>&1
rc=$?
echo "smoke pipeline on $(nproc) cores: rc $rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/device.txt"
grep -h "on gpu\|on cuda\|on cpu" results/smoke/logs/train/*/*/*.log 2>/dev/null | cut -c1-80 | sort | uniq -c | head -5 | tee -a "$OUT/device.txt"
ls results/smoke/figures 2>&1 | tr '\n' ' ' | tee -a "$OUT/device.txt"; echo
cp results/smoke/figures/claims.csv "$OUT/smoke_claims.csv" 2>/dev/null
cp results/smoke/figures/fig3.png "$OUT/smoke_fig3.png" 2>/dev/null
tail -n 25 "$OUT/bench.txt" "$OUT/bench_seeds.txt"
exit $rc
