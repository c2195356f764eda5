#!/usr/bin/env bash
# A U2++ Conformer (WeNet's unified streaming / non-streaming model) trained from scratch on the synthetic corpus
# with funasr-train, decoded in WeNet's four modes at several chunk sizes:
#   stages 0-2  the corpus and its jsonl lists: egs/synthetic_zh/run.sh's own stages (skipped when done)
#   stage 3     character units (units.txt), the starting WeNet folder (train.yaml), global_cmvn
#   stage 4     train (funasr-train through torchrun; dynamic chunks, hybrid CTC/attention loss, SpecAug)
#   stage 5     average the best checkpoints
#   stage 6     decode the test sets: ctc_greedy_search, ctc_prefix_beam_search, attention, attention_rescoring
#               x decoding_chunk_size -1 (full), 16, 8, 4 (local/decode.py)
#   stage 7     CER of every mode and chunk size (funasr-cer), tabled with the RTFs in exp/cer_table.md
#
#   egs/synthetic_zh/u2/run.sh                                    # everything (data under /work/data/synthetic_zh)
#   stage=4 stop_stage=4 egs/synthetic_zh/u2/run.sh ++train_conf.max_epoch=10   # extra funasr-train overrides
#   nproc=2 stage=4 stop_stage=4 egs/synthetic_zh/u2/run.sh ++train_conf.use_bf16=true   # both cores (DDP), as trained
#
# Settings come from the environment (defaults below), as in egs/synthetic_zh/run.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

corpus=${corpus:-/work/data/synthetic_zh}
work=${work:-$corpus}
config=${config:-train_u2++_conformer.yaml}
stage=${stage:-0}
stop_stage=${stop_stage:-7}
nproc=${nproc:-1}
device=${device:-cpu}
avg_num=${avg_num:-5}
test_sets=${test_sets:-"test test_noisy test_espeak"}
modes=${modes:-ctc_greedy_search,ctc_prefix_beam_search,attention,attention_rescoring}
chunks=${chunks:--1,16,8,4}
exp=${exp:-$work/exp/u2pp_conformer}
data=$work/data
python=${python:-python3}
export corpus work python

if [ $stage -le 2 ] && [ $stop_stage -ge 0 ]; then
  echo "stages 0-2: corpus and lists (egs/synthetic_zh/run.sh)"
  stage=$stage stop_stage=$(( stop_stage < 2 ? stop_stage : 2 )) bash "$here/../run.sh"
fi

init=$exp/init
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: units, starting folder, global_cmvn"
  mkdir -p "$init"
  # every character of the train sentence list, synthesised or not, so the units never change as audio is added
  tr '\t' ' ' < "$corpus/text/train.txt" > "$init/text.all"
  $python -m funasr.bin.token_list "$init/text.all" -o "$init/tokens.json"
  $python "$here/local/make_folder.py" "$here/conf/$config" "$init/tokens.json" "$init"
  $python -m funasr.bin.compute_cmvn "$init" "$data/train/audio_datasets.jsonl" -o "$init/global_cmvn" --format wenet
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: training (log: $exp/log.txt)"
  $python -m torch.distributed.run --nnodes "${NNODES:-1}" --nproc_per_node "$nproc" \
    --master_port "${MASTER_PORT:-26672}" -m funasr.bin.train \
    ++model="$init" \
    ++train_data_set_list="$data/train/audio_datasets.jsonl" \
    ++valid_data_set_list="$data/dev/audio_datasets.jsonl" \
    ++device="$device" ++output_dir="$exp" "$@" 2>&1 | tee -a "$exp/log.txt"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "stage 5: averaging the $avg_num best checkpoints"
  $python -m funasr.bin.average "$exp" "$avg_num"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  echo "stage 6: decoding ($modes) x chunk sizes ($chunks)"
  for set in $test_sets; do
    $python "$here/local/decode.py" "$exp" "$data/$set/wav.scp" "$exp/decode_${set}_avg$avg_num" \
      --init-param "$exp/model.pt.avg$avg_num" --modes="$modes" --chunks="$chunks" --device="$device"
  done
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  echo "stage 7: CER"
  for set in $test_sets; do
    for out in "$exp/decode_${set}_avg$avg_num"/*/; do
      $python -m funasr.bin.cer "$data/$set/text" "$out/text" > "$out/text.cer"
    done
  done
  $python "$here/local/table.py" "$exp" "$avg_num" $test_sets | tee "$exp/cer_table.md"
fi
