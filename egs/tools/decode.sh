#!/usr/bin/env bash
# The decoding and scoring stage the recipes share: `funasr` with EXP's averaged checkpoint on each set's
# wav.scp, then funasr-cer against its text; results in EXP/decode_<set>_avg<N>/ (1best_recog/text, text.cer).
#   egs/tools/decode.sh EXP AVG_NUM DATA_DIR SET [SET ...]
# Environment: device (default cpu), python; lm_file (an n-gram LM, e.g. from funasr-train-lm), lm_weight and lm_beam decode
# with the LM into EXP/decode_<set>_avg<N>_lm/ instead.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 EXP AVG_NUM DATA_DIR SET [SET ...]" >&2; exit 2; }
exp=$1 avg_num=$2 data=$3
shift 3
python=${python:-python3}
lm_args=()
[ -z "${lm_file:-}" ] || lm_args=(--lm-file "$lm_file" ${lm_weight:+--lm-weight "$lm_weight"} ${lm_beam:+--beam-size "$lm_beam"})
for set in "$@"; do
  out=$exp/decode_${set}_avg$avg_num${lm_file:+_lm}
  $python -m funasr "$data/$set/wav.scp" --model "$exp" --init-param "$exp/model.pt.avg$avg_num" \
    --device "${device:-cpu}" --output-dir "$out" --quiet "${lm_args[@]}" > /dev/null
  $python -m funasr.bin.cer "$data/$set/text" "$out/1best_recog/text" | tee "$out/text.cer"
done
