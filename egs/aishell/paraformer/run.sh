#!/usr/bin/env bash
# Train a Paraformer from scratch, FunASR's AISHELL recipe with this package's commands:
#   stage 0  data prep: wav.scp + text per set -> jsonl lists (scp2jsonl)
#   stage 1  CMVN of the training features -> am.mvn (funasr-compute-cmvn)
#   stage 2  character token list -> tokens.json (funasr-token-list)
#   stage 3  train with torchrun (funasr-train; DDP over nproc processes)
#   stage 4  average the best checkpoints -> model.pt.avgN (funasr-average)
#   stage 5  decode the test sets (funasr) and score them (funasr-cer)
#
#   raw_data=/data/aishell egs/aishell/paraformer/run.sh            # AISHELL-1 (data_aishell/ inside)
#   raw_data=/data/my_corpus config=paraformer_tiny.yaml egs/aishell/paraformer/run.sh
#       (any corpus laid out as <raw_data>/{train,dev,test}/{wav.scp,text})
#   stage=3 stop_stage=3 nproc=4 device=cuda egs/aishell/paraformer/run.sh ++train_conf.max_epoch=10
#
# Settings come from the environment (defaults below); arguments are extra funasr-train overrides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tools=$root/egs/tools
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"   # run from a checkout without installing

raw_data=${raw_data:?set raw_data to the corpus folder}
work=${work:-$PWD}                                     # data/ and exp/ are written here
config=${config:-paraformer_sanm_12e_6d_2048_256.yaml}
stage=${stage:-0}
stop_stage=${stop_stage:-5}
nproc=${nproc:-1}                                      # processes (GPUs) on this node
device=${device:-cpu}
avg_num=${avg_num:-5}
export nproc device python
train_set=${train_set:-train}
valid_set=${valid_set:-dev}
test_sets=${test_sets:-test}
exp=${exp:-$work/exp/baseline_${config%.yaml}_zh_char_exp1}
data=$work/data
python=${python:-python3}

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  for set in $train_set $valid_set $test_sets; do
    mkdir -p "$data/$set"
    if [ -d "$raw_data/data_aishell" ]; then
      "$here/local/aishell_data_prep.sh" "$raw_data/data_aishell" "$set" "$data/$set"
    else
      cp "$raw_data/$set/wav.scp" "$data/$set/wav.scp"
      cp "$raw_data/$set/text" "$data/$set/text.org"
    fi
    # Chinese characters: no spaces inside transcripts
    awk '{k=$1; $1=""; gsub(/ /, ""); print k" "$0}' "$data/$set/text.org" > "$data/$set/text"
    $python -m funasr.bin.scp2jsonl ++scp_file_list="['$data/$set/wav.scp', '$data/$set/text']" \
      ++data_type_list='["source", "target"]' ++jsonl_file_out="$data/$set/audio_datasets.jsonl"
  done
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: CMVN"
  $python -m funasr.bin.compute_cmvn "$here/conf/$config" "$data/$train_set/audio_datasets.jsonl" -o "$data/$train_set/am.mvn"
fi

token_list=$data/zh_token_list/char/tokens.json
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: token list"
  mkdir -p "$(dirname "$token_list")"
  $python -m funasr.bin.token_list "$data/$train_set/text" -o "$token_list"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: training (log: $exp/log.txt)"
  MASTER_PORT=${MASTER_PORT:-26669} "$tools/train.sh" "$here/conf" "$config" "$data/$train_set/audio_datasets.jsonl" \
    "$data/$valid_set/audio_datasets.jsonl" "$token_list" "$data/$train_set/am.mvn" "$exp" "$@"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: averaging the $avg_num best checkpoints"
  $python -m funasr.bin.average "$exp" "$avg_num"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "stage 5: decoding and scoring"
  "$tools/decode.sh" "$exp" "$avg_num" "$data" $test_sets
fi
