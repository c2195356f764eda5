#!/usr/bin/env bash
# AISHELL-1 (openslr 33) -> Kaldi lists: aishell_data_prep.sh <data_aishell> <train|dev|test> <out_dir>
# writes <out_dir>/wav.scp and <out_dir>/text.org (the transcript with its word spaces) for the utterances
# that have both audio and a transcript.
set -euo pipefail
src=$1; set=$2; out=$3
mkdir -p "$out"
find "$src/wav/$set" -iname "*.wav" | sort | awk -F/ '{k=$NF; sub(/\.[wW][aA][vV]$/, "", k); print k" "$0}' > "$out/wav.scp.all"
awk 'NR==FNR {have[$1]=1; next} ($1 in have)' "$out/wav.scp.all" "$src/transcript/aishell_transcript_v0.8.txt" | sort > "$out/text.org"
awk 'NR==FNR {have[$1]=1; next} ($1 in have)' "$out/text.org" "$out/wav.scp.all" > "$out/wav.scp"
rm "$out/wav.scp.all"
echo "$set: $(wc -l < "$out/wav.scp") utterances"
