#!/usr/bin/env bash
# ensure_venv.sh VENV REQUIREMENTS [EDITABLE...]: create VENV and install REQUIREMENTS (plus editable packages)
# only when the requirements differ from what was installed last time. Safe to run on every `make`.
set -euo pipefail
venv=$1; req=$2; shift 2
stamp="$venv/.installed-requirements"
want=$(cat "$req" "$(dirname "$req")"/*.txt 2>/dev/null; printf '%s\n' "$@")
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo ">> preparing $venv from $req"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
"$venv/bin/python" -m pip install --disable-pip-version-check -r "$req" ${@:+$(printf -- '-e %s ' "$@")}
# Packages whose declared dependencies another file replaces (requirements/ocr-no-deps.txt says why).
for no_deps in "$(dirname "$req")"/*-no-deps.txt; do
  [ -f "$no_deps" ] && "$venv/bin/python" -m pip install --disable-pip-version-check --no-deps -r "$no_deps"
done
printf '%s' "$want" > "$stamp"
