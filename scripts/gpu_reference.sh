#!/usr/bin/env bash
# On a lent GPU machine (no internet), from the repository root, after
# `python scripts/gpu_reference.py prepare ...` here: install the carried wheels, train the
# candidate for $BUDGET seconds (default 420) and leave best.pt, training_summary.json and the
# log in $OUT. The device tool's call: command `bash scripts/gpu_reference.sh`, carry [".gpu"].
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder that comes back}
BUDGET=${BUDGET:-420}
if [ ! -d .gpu/photos ]; then
  echo "no .gpu/photos: run 'python scripts/gpu_reference.py prepare --photos ...' here first, and carry .gpu" >&2
  exit 2
fi
if compgen -G ".gpu/wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/wheels/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 scripts/gpu_reference.py train --photos .gpu/photos --out "$OUT/run" --budget "$BUDGET" 2>&1 | tee "$OUT/train.log"
rm -f "$OUT/run/last.pt"  # the resume state (optimiser, EMA): too large to come back, not needed here
ls -la "$OUT/run"
