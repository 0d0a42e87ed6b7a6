#!/bin/bash
# saccade pretrain on N nodes x G GPUs under SLURM: one torchrun per node, one process per GPU, NCCL
# (docs/distributed.md). Submit with:  sbatch --nodes=4 scripts/slurm_pretrain.sh --data /shards --batch-size 256
# Every argument is passed to `saccade pretrain`. Resubmitting the same command resumes from OUTPUT_DIR's checkpoint
# (a pre-empted or failed job loses at most --checkpoint-every steps).
#SBATCH --job-name=saccade-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one torchrun launcher per node; it starts one process per GPU
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120            # SIGTERM 2 minutes before the time limit: saccade checkpoints and stops
#SBATCH --requeue                    # a requeued job resumes from the checkpoint
#SBATCH --output=%x-%j.out
set -euo pipefail

GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-8}
# The rendezvous: the first node of the allocation, a free port, and an id shared by all nodes of this job.
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_PORT=${RDZV_PORT:-29500}
# Persistent compile cache (--compile): kernels built by one job are reused by the next.
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$HOME/.cache/saccade-inductor}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

# srun starts one torchrun per node; torchrun starts GPUS_PER_NODE ranks there (LOCAL_RANK picks the GPU).
# --kill-on-bad-exit: when one node's torchrun fails (a rank died), SLURM ends the other nodes' torchruns.
srun --kill-on-bad-exit=1 torchrun \
    --nnodes="$SLURM_JOB_NUM_NODES" \
    --nproc-per-node="$GPUS_PER_NODE" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="$HEAD_NODE:$RDZV_PORT" \
    --rdzv-id="$SLURM_JOB_ID" \
    --max-restarts=0 \
    "$(command -v saccade)" pretrain "$@"
