#!/usr/bin/env bash
# Rehearse launch/tpu_vm.sh on any CPU machine before renting a Cloud TPU.
#
#   launch/tpu_rehearsal.sh [FLAGFILE] [extra --flags...]     (the arguments of tpu_vm.sh)
#   e.g. launch/tpu_rehearsal.sh configs/imagenet64.cfg
#
# Runs the exact command line tpu_vm.sh execs (read from that script) in one Python process,
# with the CPU split into 2 logical devices standing in for the TPU cores (TPUStrategy is
# replaced by a MirroredStrategy over them) and TensorFlow's in-memory ram:// filesystem
# standing in for gs:// (data, workdir and export). The first run gets SIGTERM (a preemption)
# and must checkpoint and exit 42; the same command again must resume from the ram://
# checkpoint, finish, export a SavedModel that loads and samples images of the config's shape,
# and leave no file on the local disk. A few steps of the config's networks, loss and schedule
# in mixed_bfloat16 with --steps_per_execution=2; minutes on a CPU for configs/imagenet64.cfg.
# It cannot show XLA compilation for the TPU, HBM limits, libtpu or speed: docs/distributed.md.
# Exit code 0 when every check passed, 1 listing each failed check, 2 for a bad flag.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m mmd_keras.tools.tpu_rehearsal "$@"
