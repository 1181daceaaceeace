#!/usr/bin/env bash
# Several JAX processes on this machine, each with its own CPU devices, joined over gloo: a multi-host run
# in miniature (the same code path as a TPU pod or a SLURM job).
#
#   NUM_PROCESSES=2 DEVICES_PER_PROCESS=4 launch/local_cpu.sh --config configs/tiny.py --workdir /tmp/snip_mp
#
# Arguments go to `python -m snipjax.train`; PORT (default 12355) is process 0's coordinator port.
set -euo pipefail
n=${NUM_PROCESSES:-2}
devices=${DEVICES_PER_PROCESS:-4}
port=${PORT:-12355}
python=${PYTHON:-python}

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for ((i = 0; i < n; i++)); do
  JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES=$devices JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo \
    "$python" -m snipjax.train "$@" \
    --coordinator_address="localhost:$port" --num_processes="$n" --process_id="$i" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
