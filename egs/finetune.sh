#!/usr/bin/env bash
# Fine-tune a released Paraformer on your own data (FunASR's finetune.sh, with this package's commands):
#   1. Kaldi lists -> jsonl (scp2jsonl)   2. torchrun funasr-train from the released model
#   3. decode the validation set (funasr)  4. score it (funasr-cer)
#
#   data_dir=data/list egs/finetune.sh                 # train_wav.scp train_text.txt val_wav.scp val_text.txt
#   model=./my_model nproc=2 device=cuda output_dir=outputs egs/finetune.sh ++train_conf.max_epoch=20
#
# The output folder is a complete model folder: `funasr --model outputs ...`, AutoModel(model="outputs")
# and `funasr-export --model outputs` load it. Settings come from the environment (defaults below);
# arguments are extra funasr-train overrides.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"   # run from a checkout without installing

model=${model:-iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch}
hub=${hub:-ms}
data_dir=${data_dir:-data/list}
output_dir=${output_dir:-./outputs}
nproc=${nproc:-1}                 # processes (GPUs) on this node; WORLD_SIZE nodes with torchrun's usual variables
device=${device:-cpu}
batch_type=${batch_type:-token}
batch_size=${batch_size:-6000}
max_epoch=${max_epoch:-50}
lr=${lr:-0.0002}
num_workers=${num_workers:-4}
avg_num=${avg_num:-10}
python=${python:-python3}

mkdir -p "$output_dir"
for set in train val; do
  $python -m funasr.bin.scp2jsonl ++scp_file_list="['$data_dir/${set}_wav.scp', '$data_dir/${set}_text.txt']" \
    ++data_type_list='["source", "target"]' ++jsonl_file_out="$data_dir/$set.jsonl"
done

$python -m torch.distributed.run --nnodes "${WORLD_SIZE:-1}" --nproc_per_node "$nproc" \
  --master_port "${MASTER_PORT:-26669}" -m funasr.bin.train \
  ++model="$model" ++hub="$hub" \
  ++train_data_set_list="$data_dir/train.jsonl" ++valid_data_set_list="$data_dir/val.jsonl" \
  ++dataset_conf.batch_sampler=BatchSampler ++dataset_conf.batch_type="$batch_type" \
  ++dataset_conf.batch_size="$batch_size" ++dataset_conf.sort_size=1024 ++dataset_conf.num_workers="$num_workers" \
  ++train_conf.max_epoch="$max_epoch" ++train_conf.log_interval=1 ++train_conf.resume=true \
  ++train_conf.validate_interval=2000 ++train_conf.save_checkpoint_interval=2000 \
  ++train_conf.keep_nbest_models=20 ++train_conf.avg_nbest_model="$avg_num" \
  ++optim_conf.lr="$lr" ++device="$device" ++output_dir="$output_dir" "$@" 2>&1 | tee "$output_dir/log.txt"

decode=$output_dir/decode_val_avg$avg_num
$python -m funasr "$data_dir/val_wav.scp" --model "$output_dir" --init-param "$output_dir/model.pt.avg$avg_num" \
  --device "$device" --output-dir "$decode" --quiet > /dev/null
$python -m funasr.bin.cer "$data_dir/val_text.txt" "$decode/1best_recog/text" | tee "$decode/text.cer"
