#!/usr/bin/env bash
# Commits every finished cpu stage whose record matches today's code hash and differs from HEAD:
# its record, executed page, results and figures (nothing of a stage still running).
set -euo pipefail
cd "$(dirname "$0")/.."
code=$(.venv/bin/python -c 'from sepnet_core.pipeline.cache import source_hash; print(source_hash())')
stages=()
for record in results/cpu/_stages/*.json; do
  stage=$(basename "$record" .json)
  [ "$stage" = run ] && continue
  read -r hash output < <(.venv/bin/python -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get('code_hash'), d.get('output'))" "$record")
  [ "$hash" = "$code" ] || continue
  paths=("$record" "$output")
  for p in "results/cpu/$stage" "figures/cpu/$stage"; do [ -e "$p" ] && paths+=("$p"); done
  git add -A -- "${paths[@]}"
  if ! git diff --cached --quiet -- "${paths[@]}"; then stages+=("$stage"); fi
done
if [ ${#stages[@]} -gt 0 ]; then
  git commit -q -m "cpu chain at $(git log -1 --format=%h -- sepnet_core): stage(s) ${stages[*]} (executed pages, results, figures)"
  echo "committed: ${stages[*]}"
else
  echo "nothing new"
fi
