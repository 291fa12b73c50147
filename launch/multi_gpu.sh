#!/usr/bin/env bash
# Train on every GPU of one host with tf.distribute.MirroredStrategy.
#
#   launch/multi_gpu.sh [FLAGFILE] [extra --flags...]
#   e.g. launch/multi_gpu.sh configs/imagenet64.cfg --data_dir=/data/tfds
#
# --batch_size is PER REPLICA: with 3 GPUs and --batch_size=64 the global batch is 192
# (paper 2's ImageNet 64 setting); the launcher prints the global batch at start-up.
# --mmd_across_replicas=block (default) computes MMD^2 per GPU and averages gradients;
# =global all-gathers critic features so the estimate equals one device on the global batch.
# Restrict the GPUs with CUDA_VISIBLE_DEVICES=0,1,2. Re-running the same command resumes
# from the last checkpoint in --workdir.
set -euo pipefail
cd "$(dirname "$0")/.."
FLAGFILE="${1:-configs/imagenet64.cfg}"
shift || true
nvidia-smi --query-gpu=index,name,memory.total --format=csv 2>/dev/null || echo "warning: nvidia-smi not found"
exec python -m mmd_keras.launch --flagfile="${FLAGFILE}" --strategy=mirrored "$@"
