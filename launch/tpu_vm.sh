#!/usr/bin/env bash
# Train on a Cloud TPU VM (the TPU is attached to this VM) with TPUStrategy.
#
#   launch/tpu_vm.sh [FLAGFILE] [extra --flags...]
#   e.g. launch/tpu_vm.sh configs/imagenet64.cfg --data_dir=gs://BUCKET/tfds \
#            --workdir=gs://BUCKET/runs/imagenet64
#
# Set-up on the VM (once), in the checkout; MMD_KERAS_TENSORFLOW=tpu makes the package require
# tensorflow-tpu (kept if the VM image has it; its own requirements pull the matching libtpu from
# PyPI) instead of the plain tensorflow wheel, which pip would install beside it into the same
# tensorflow/ folder:
#   MMD_KERAS_TENSORFLOW=tpu pip install -e .
# (tensorflow-tpu 2.16-2.18 find their libtpu only with
#  -f https://storage.googleapis.com/libtpu-tf-releases/index.html)
# TPU=local (default) uses the VM's own TPU; for a TPU node give its name or grpc://IP:8470
# (TPU=my-tpu launch/tpu_vm.sh ...). Data and workdir should be on GCS (TPU workers read
# them directly). --batch_size is per replica (per TPU core): a v3-8 with --batch_size=64
# trains on a global batch of 512. The train step is XLA-compiled on TPU (static shapes:
# the dataset drops remainders); --steps_per_execution=N runs N generator steps per host
# call, which TPUs need for speed. --mmd_across_replicas=global all-gathers critic
# features over the TPU interconnect (cheap for s=1..16 features). --mixed_precision=mixed_bfloat16:
# the TPU's matrix units compute in bfloat16, while variables, optimizer state, critic features
# and the MMD estimates stay float32; pass --mixed_precision=float32 after it to train in float32.
set -euo pipefail
cd "$(dirname "$0")/.."
FLAGFILE="${1:-configs/imagenet64.cfg}"
shift || true
exec python -m mmd_keras.launch --flagfile="${FLAGFILE}" --strategy=tpu --tpu="${TPU:-local}" \
  --mixed_precision=mixed_bfloat16 "$@"
