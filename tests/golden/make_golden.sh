#!/usr/bin/env bash
# Regenerate the golden cases: one deterministic scenario per simulator fault (fault at 30 s,
# 90 s long, seed 7) and the alerts the pipeline produced for it. Review the diff of the
# .expected.jsonl files before committing: they are the contract the golden tests enforce.
# Needs a running Kafka (tocsin services up).
set -euo pipefail
cd "$(dirname "$0")"
for fault in over_temperature bearing_wear motor_overload cavitation leak; do
  tocsin sim scenario --fault "$fault" --at 30 --seconds 90 --seed 7 -o "$fault.rec"
  tocsin replay "$fault.rec" --expect "$fault.expected.jsonl" --update "$@"
done
