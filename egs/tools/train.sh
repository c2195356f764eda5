#!/usr/bin/env bash
# The training stage the recipes share: funasr-train under torchrun on jsonl lists, logging to EXP/log.txt.
#   egs/tools/train.sh CONF_DIR CONFIG TRAIN_JSONL VALID_JSONL TOKENS AM_MVN EXP [++key=value ...]
# Environment: nproc (processes on this node, default 1), device (cpu|cuda, default cpu), NNODES,
# MASTER_PORT, python.
set -euo pipefail
[ $# -ge 7 ] || { echo "usage: $0 CONF_DIR CONFIG TRAIN_JSONL VALID_JSONL TOKENS AM_MVN EXP [++key=value ...]" >&2; exit 2; }
conf_dir=$1 config=$2 train=$3 valid=$4 tokens=$5 cmvn=$6 exp=$7
shift 7
python=${python:-python3}
mkdir -p "$exp"
$python -m torch.distributed.run --nnodes "${NNODES:-1}" --nproc_per_node "${nproc:-1}" \
  --master_port "${MASTER_PORT:-26669}" -m funasr.bin.train \
  --config-path "$conf_dir" --config-name "$config" \
  ++train_data_set_list="$train" ++valid_data_set_list="$valid" \
  ++tokenizer_conf.token_list="$tokens" ++frontend_conf.cmvn_file="$cmvn" \
  ++device="${device:-cpu}" ++output_dir="$exp" "$@" 2>&1 | tee -a "$exp/log.txt"
