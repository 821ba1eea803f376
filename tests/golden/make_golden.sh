#!/usr/bin/env bash
# Regenerate the golden cases: one deterministic scenario per listed asset and fault (fault at
# 30 s, 90 s long, seed 7, only the faulty asset) and the alerts the pipeline produced for it.
# Review the diff of the .expected.jsonl files before committing: they are the contract the
# golden tests enforce. Needs a running Kafka (tocsin services up).
set -euo pipefail
cd "$(dirname "$0")"
rm -f ./*.rec ./*.expected.jsonl
while read -r asset fault; do
  name="$asset.$fault"
  tocsin sim scenario --asset "$asset" --fault "$fault" --at 30 --seconds 90 --seed 7 -o "$name.rec"
  tocsin replay "$name.rec" --expect "$name.expected.jsonl" --update "$@"
done < cases.txt
