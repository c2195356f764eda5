#!/usr/bin/env bash
# Offline recognition recipe: VAD -> ASR -> punctuation over files, folders or a wav.scp.
#
#   egs/infer.sh data/wav.scp exp/infer            # Kaldi-style 1best_recog/ plus json/srt/txt
#   model=paraformer-en punc_model= egs/infer.sh talks/ exp/en
#   device=cuda hotword="魔搭 达摩院" egs/infer.sh meeting.wav exp/meeting
#
# Settings come from the environment (defaults below); everything is done by the `funasr` command.
set -euo pipefail

model=${model:-paraformer-zh}
vad_model=${vad_model:-fsmn-vad}
punc_model=${punc_model-ct-punc}
hub=${hub:-hf}
device=${device:-cpu}
batch_size_s=${batch_size_s:-300}
formats=${formats:-json,srt,txt}
hotword=${hotword:-}

if [ $# -ne 2 ]; then
  echo "usage: $0 <audio file | folder | wav.scp> <output_dir>" >&2
  exit 2
fi
input=$1
output_dir=$2

args=(--model "$model" --hub "$hub" --device "$device" --batch-size-s "$batch_size_s"
      --output-dir "$output_dir" --format "$formats")
[ -n "$vad_model" ] && args+=(--vad-model "$vad_model")
[ -n "$punc_model" ] && args+=(--punc-model "$punc_model")
[ -n "$hotword" ] && args+=(--hotword "$hotword")

# run from a checkout without installing: the repository root goes first on the Python path
export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
python -m funasr "$input" "${args[@]}"
echo "results: $output_dir/1best_recog/text" >&2
