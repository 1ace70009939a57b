#!/usr/bin/env bash
# docs/openapi.yaml documents every route of the http front end's route table
# (plugins/frontends/http/routes.c), with its method, and no route that is not there.
set -euo pipefail
src=${1:-$(dirname "$0")/..}
routes=$src/plugins/frontends/http/routes.c
spec=$src/docs/openapi.yaml
fail=0
table=$(grep -oE '\{"(GET|POST)", "/api/[^"]*"' "$routes" | sed -E 's/\{"([A-Z]+)", "([^"]*)"/\1 \2/')
[ -n "$table" ] || { echo "no routes found in $routes"; exit 1; }
while read -r method path; do
  lower=$(echo "$method" | tr A-Z a-z)
  # the path's block: from "  PATH:" to the next top-level path
  block=$(awk -v p="  $path:" '$0 == p {on=1; next} on && /^  \/api/ {exit} on' "$spec")
  if [ -z "$block" ]; then echo "openapi.yaml lacks $path ($method)"; fail=1; continue; fi
  grep -qE "^    $lower:" <<<"$block" || { echo "openapi.yaml lacks $method $path"; fail=1; }
done <<<"$table"
# and documents nothing the server does not serve
while read -r path; do
  grep -qF "\"$path\"" "$routes" || { echo "openapi.yaml documents $path, which routes.c does not serve"; fail=1; }
done < <(grep -oE '^  /api/[^:]*' "$spec" | sed 's/^  //')
[ $fail -eq 0 ] && echo "openapi.yaml: $(wc -l <<<"$table") routes documented"
exit $fail
