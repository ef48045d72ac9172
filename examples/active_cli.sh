#!/usr/bin/env bash
# The CLI route through an active-learning experiment, at tiny settings (about a minute on 2 cores).
#
#   bash examples/active_cli.sh [OUTPUT_DIR]
#
# 1. Pool-based: margin sampling, with the counterfactual that splits each arm's gap to `random` into an
#    initialization part and a selection part, and the overlap of the labeled sets.
# 2. Stream-based: chunks of 300 arrive each round; each arm labels the most uncertain quarter of each.
# Set ACTIVEWS to how activews is started (default: `activews`; e.g. "python -m activews").
set -euo pipefail
out=${1:-runs/example-active-cli}
aw=${ACTIVEWS:-activews}
tiny=(--n-examples 2000 --initial 200 --query-size 300 --rounds 4 --seeds 2 --model-param hidden=128,128)

$aw bench --stream active --acquisition margin --counterfactual "${tiny[@]}" \
    --progress none --no-plot --output "$out/active"
$aw bench --stream selective --label-fraction 0.25 --acquisition margin --counterfactual "${tiny[@]}" \
    --progress none --no-plot --output "$out/selective"
