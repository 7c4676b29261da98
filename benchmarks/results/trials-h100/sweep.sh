#!/usr/bin/env bash
# Issue 27 lever sweep on validation (MNIST 30D, 70 epochs, CUDA) + the CUDA-marked tests.
set -u
export MNIST_DATA=$PWD/.gpu/mnist.pkl.gz PYTHONPATH=. OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name())'
git rev-parse --short HEAD 2>/dev/null
run() {  # name, then trials.py options
    local name=$1; shift
    ( start=$SECONDS; timeout --signal=INT 330 python3 benchmarks/trials.py --device cuda \
        --out "$OUT/trial_$name.jsonl" --model 30D "$@" > "$OUT/log_$name.txt" 2>&1
      echo "$name rc=$? ${SECONDS}-${start}s" >> "$OUT/done.txt" ) &
}
run b500_wd05_s0
run b250_wd05_s0 --batch-size 250
run b250_wd07_s0 --batch-size 250 --weight-decay 0.7
run b250_wd10_s0 --batch-size 250 --weight-decay 1.0
run b250_wd085_s0 --batch-size 250 --weight-decay 0.85
run b500_wd07_s0 --weight-decay 0.7
run b125_wd05_s0 --batch-size 125
run b125_wd07_s0 --batch-size 125 --weight-decay 0.7
run b500_wd05_s1 --seed 1
run b250_wd05_s1 --batch-size 250 --seed 1
run b250_wd07_s1 --batch-size 250 --weight-decay 0.7 --seed 1
run b250_wd10_s1 --batch-size 250 --weight-decay 1.0 --seed 1
sleep 20
timeout 120 python3 -m pytest -q -p no:cacheprovider -m cuda tests/ > "$OUT/pytest_cuda.txt" 2>&1
echo "pytest rc=$?" >> "$OUT/done.txt"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >> "$OUT/done.txt"
wait
cat "$OUT/done.txt"; tail -n 2 "$OUT"/log_*.txt | cut -c1-200
