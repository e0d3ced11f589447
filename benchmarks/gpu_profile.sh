#!/usr/bin/env bash
# The seed's scale on a lent GPU machine (issue 12), as one prepared script rehearsed on CPU first.
#
#   benchmarks/gpu_profile.sh prepare            # here, once: .gpu_deps (SB3, sb3-contrib, gymnasium, fsspec,
#                                                #   tqdm for python 3.12) and .gpu_segment (segment 0 + its HMM)
#   benchmarks/gpu_profile.sh run                # on the GPU machine: carry .gpu_deps and .gpu_segment
#   benchmarks/gpu_profile.sh run --device cpu --tiny   # the CPU rehearsal, tiny sizes, about 6 minutes
#   benchmarks/gpu_profile.sh run --parts train,compiled   # only some parts (each call of the device tool may run
#                                                           # 10 minutes: split the run over calls)
#
# `run` prints, in order: the device; BatchCryptoEnv vs DummyVecEnv at 1024 envs (env_throughput.py); one TQC
# update and one MAE step of the gpu profile against their matmul limits (learner_limit.py); the compiled update
# against the eager one, inductor and CUDA graphs (compiled_update.py: compile time, updates/s, fraction of the
# matmul limit); batch 512 x 128 updates against 4096 x 16 at the same samples per env step (batch_shape.py);
# then 2 minutes of gpu-profile training on segment 0, eager and with CUDA graphs (gpu_train.py:
# env steps/s with updates, updates/s, peak GPU memory and the projected wall time of 25M steps). The GPU
# machine has python3 with CUDA torch, pandas and pyarrow only.
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:-}
shift || true
device=cuda
tiny=0
seconds=120
parts=env,learner,compiled,batch,train
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --tiny) tiny=1; seconds=20; shift ;;
    --seconds) seconds=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    *) echo "gpu_profile.sh: error: unknown option $1: use --device cpu|cuda, --tiny, --seconds N or --parts" \
         "env,learner,compiled,batch,train" >&2; exit 2 ;;
  esac
done

case $command in
  prepare)
    .venv/bin/pip install --quiet --no-deps --target .gpu_deps --python-version 3.12 --only-binary=:all: \
      --platform manylinux2014_x86_64 stable-baselines3==2.9.2 sb3-contrib==2.9.2 gymnasium==1.4.0 cloudpickle \
      farama-notifications fsspec tqdm
    .venv/bin/python benchmarks/gpu_train.py prepare .gpu_segment
    ;;
  run)
    python=${PYTHON:-python3}
    export PYTHONPATH=".gpu_deps:.:benchmarks${PYTHONPATH:+:$PYTHONPATH}"
    modes=default,reduce-overhead best_mode=reduce-overhead  # CUDA graphs; on CPU reduce-overhead is inductor only
    wants() { [[ ",$parts," == *",$1,"* ]]; }
    if [[ $tiny == 1 ]]; then
      envs=64 profiles=smoke batches=64,128
      overrides=(--override train.n_envs=16 --override train.batch_size=64 --override train.learning_starts=512
                 --override train.features_dim=64 --override train.buffer_size=20000 --override mae.d_model=32
                 --override mae.n_heads=2 --override mae.dim_feedforward=64 --override mae.batch_size=64
                 --override mae.steps_per_epoch=5)
    else
      envs=1024 profiles=gpu batches=512,4096 overrides=()
    fi
    $python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    if wants env; then
      echo "== env: BatchCryptoEnv vs DummyVecEnv, $envs envs"
      $python benchmarks/env_throughput.py --device "$device" --envs "$envs"
    fi
    if wants learner; then
      echo "== learner and MAE step vs their matmul limits, profile $profiles"
      $python benchmarks/learner_limit.py --device "$device" --profiles "$profiles"
    fi
    if wants compiled; then
      echo "== the compiled update (train.compile) vs the eager one, profile $profiles"
      $python benchmarks/compiled_update.py --device "$device" --profiles "$profiles" --modes "$modes" --rounds 3
    fi
    if wants batch; then
      echo "== fewer, larger updates at the same samples per env step, profile $profiles"
      $python benchmarks/batch_shape.py --device "$device" --profile "$profiles" --batches "$batches" --vec-steps 2
    fi
    if wants train; then
      for compile in off "$best_mode"; do
        echo "== gpu profile trained for $seconds s on segment 0, train.compile=$compile"
        $python benchmarks/gpu_train.py run .gpu_segment --device "$device" --seconds "$seconds" "${overrides[@]}" \
          --override "train.compile=$compile"
      done
    fi
    ;;
  *)
    echo "gpu_profile.sh: error: unknown command '${command}': use prepare or run [--device cpu|cuda] [--tiny]" >&2
    exit 2
    ;;
esac
