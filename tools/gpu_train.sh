#!/usr/bin/env bash
# Issue 11's GPU sitting: three variants trained side by side on one GPU for the same minutes,
# each stage 1 (L1) then stage 2 (GAN), warm-started from the bundled default. The photo pool
# travels pre-resized in pack/ (tools/pack_photos.py), the missing packages as wheels in .whl/.
#   A: the recipe (sqrt-balanced folders, crops 60-100 %, EMA), L1 PRE minutes then GAN the rest
#   B: A without balance and scale crops (--balance 0 --crop-scale 1)
#   C: A with a longer L1 stage (LONGPRE minutes)
# Results: $OUT/{a_pre,a_gan,a_gan_raw,b_gan,c_gan}.tar (fp16 models) and $OUT/logs.tar.
# With CONTINUE=MODEL it instead trains MODEL's GAN stage on for TOTAL minutes alone on the GPU
# (results: $OUT/more_gan.tar, and snapshots more_t1..4.tar every SNAPSHOT_SECONDS).
set -u
OUT=${OUT:-runs/gpu_out}
TOTAL=${TOTAL:-7.2}      # training minutes per variant (both stages)
PRE=${PRE:-3}
LONGPRE=${LONGPRE:-5}
RUNS=${RUNS:-/tmp/colorgan_runs}
mkdir -p "$OUT" "$RUNS"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
# The pool travels as one zip (15 k small files would each cost a header in the transfer).
if [ -f packzip/pack.zip ] && [ ! -d pack/train ]; then
    python3 -m zipfile -e packzip/pack.zip pack/ || exit 1
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null

collect() { python3 tools/gpu_collect.py "$@" || echo "could not collect $*"; }

variant() {  # name, L1 minutes, extra flags...; collects its models as soon as it ends
    local name=$1 pre=$2; shift 2
    local gan; gan=$(python3 -c "print($TOTAL - $pre)")
    { python3 -m colorgan train --config configs/gpu_pretrain.yaml --out "$RUNS/$name/pre" --max-minutes "$pre" "$@" &&
      python3 -m colorgan train --config configs/gpu_gan.yaml --init-from "$RUNS/$name/pre" --out "$RUNS/$name/gan" \
          --max-minutes "$gan" "$@"; } > "$RUNS/$name.log" 2>&1
    echo "variant $name finished: exit $?"
    collect "$RUNS/$name/gan" "$OUT/${name}_gan.tar"
}
if [ -n "${CONTINUE:-}" ]; then  # a second, short sitting: more GAN training of one model, all cores
    # snapshots of the published (EMA) model along the way, for choosing by the selection rule
    ( for i in 1 2 3 4; do sleep "${SNAPSHOT_SECONDS:-45}"; collect "$RUNS/more/gan" "$OUT/more_t$i.tar"; done ) &
    snapshots=$!
    python3 -m colorgan train --config configs/gpu_gan.yaml --init-from "$CONTINUE" --out "$RUNS/more/gan" \
        --max-minutes "$TOTAL" --workers 14 > "$RUNS/more.log" 2>&1
    echo "continued training finished: exit $?"
    kill "$snapshots" 2>/dev/null
    collect "$RUNS/more/gan" "$OUT/more_gan.tar"
    tar -cf "$OUT/logs.tar" -C "$RUNS" --exclude='checkpoint' --exclude='samples' --exclude='*.safetensors' --exclude='tensorboard' .
    tail -n 4 "$RUNS/more.log"
    exit 0
fi
variant a "$PRE" &
variant b "$PRE" --balance 0 --crop-scale 1 &
variant c "$LONGPRE" &
wait
collect "$RUNS/a/pre" "$OUT/a_pre.tar"
collect "$RUNS/a/gan" "$OUT/a_gan_raw.tar" --raw
tar -cf "$OUT/logs.tar" -C "$RUNS" --exclude='checkpoint' --exclude='samples' --exclude='*.safetensors' --exclude='tensorboard' .
tail -n 4 "$RUNS"/*.log
ls -la "$OUT"
