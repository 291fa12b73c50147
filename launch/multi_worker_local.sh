#!/usr/bin/env bash
# Two MultiWorkerMirroredStrategy workers on this machine, talking over 127.0.0.1.
# A rehearsal of a multi-host run: on real hosts, run one worker per host with the
# hosts' addresses in TF_CONFIG's cluster.worker list and its own task index.
#
#   launch/multi_worker_local.sh [FLAGFILE] [extra --flags...]
#   e.g. launch/multi_worker_local.sh configs/smoke.cfg --workdir=runs/mw_smoke
#
# Environment: PORT0/PORT1 (default 12345/12346), WORKDIR (default runs/multi_worker),
# TIMEOUT (seconds, default 3600). Worker 0 is the chief: it writes the real checkpoints,
# samples and export to $WORKDIR; worker 1 writes its (required, collective) saves to
# ${WORKDIR}_worker1/.worker_1 (the launcher adds .worker_<i> for non-chief workers, so one
# shared --workdir works too), which can be deleted afterwards. --batch_size is per worker replica
# (global = 2 x batch_size here). If one worker dies the other blocks in a collective: the
# script bounds both with `timeout -s KILL` and kills the survivor by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
FLAGFILE="${1:-configs/smoke.cfg}"
shift || true
PORT0="${PORT0:-12345}"; PORT1="${PORT1:-12346}"
WORKDIR="${WORKDIR:-runs/multi_worker}"; TIMEOUT="${TIMEOUT:-3600}"
CLUSTER="{\"worker\": [\"127.0.0.1:${PORT0}\", \"127.0.0.1:${PORT1}\"]}"
mkdir -p "$(dirname "${WORKDIR}")"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "${pid}" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for index in 0 1; do
  dir="${WORKDIR}"; [ "${index}" = 0 ] || dir="${WORKDIR}_worker${index}"
  TF_CONFIG="{\"cluster\": ${CLUSTER}, \"task\": {\"type\": \"worker\", \"index\": ${index}}}" \
    timeout -s KILL "${TIMEOUT}" python -m mmd_keras.launch --flagfile="${FLAGFILE}" \
      --strategy=multi_worker --workdir="${dir}" "$@" > "${dir}.worker${index}.log" 2>&1 &
  pids+=($!)
  echo "worker ${index}: pid ${pids[-1]}, log ${dir}.worker${index}.log"
done
status=0
for pid in "${pids[@]}"; do wait "${pid}" || status=$?; done
exit "${status}"
