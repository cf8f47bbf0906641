#!/usr/bin/env bash
# Install the pinned set (requirements.lock) into a virtual environment: `make` runs it.
#
#   infra/install.sh VENV_PYTHON LOCK
#
# The installer is uv (pinned below, itself installed with the venv's pip: a single wheel) when it can
# be had, else pip; both install the same lock from the same package sources. uv does not read pip's
# configuration (pip.conf, PIP_* variables), so pip's own view of it (`pip config list`: index-url,
# extra-index-url, find-links, constraint, cert, trusted-host, no-index) is handed to uv as flags. Where
# the torch CPU wheel comes from (a find-links folder on this machine) stays where pip would take it.
# DOODLEFLOW_INSTALLER=pip forces pip. Timings: docs/benchmarks.md, "Set-up time".
set -euo pipefail

PY=$1
LOCK=$2
UV_VERSION=0.13.8 # keep equal to uv's pin in requirements.in / requirements.lock

pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

# pip's configuration as uv flags, one per line (values of a key are space-separated, as in pip.conf).
uv_sources() {
  "$PY" -m pip config list 2>/dev/null | while IFS= read -r line; do
    key=${line%%=*}
    key=${key##*.}
    value=${line#*=}
    value=${value#\'}
    value=${value%\'}
    for v in $value; do
      case $key in
      index-url) printf '%s\n' --index-url "$v" ;;
      extra-index-url) printf '%s\n' --extra-index-url "$v" ;;
      find-links) printf '%s\n' --find-links "$v" ;;
      constraint) printf '%s\n' --constraint "$v" ;;
      trusted-host) printf '%s\n' --allow-insecure-host "$v" ;;
      no-index) case $v in true | 1 | yes | on) printf '%s\n' --no-index ;; esac ;;
      esac
    done
  done
}

with_uv() {
  [ "${DOODLEFLOW_INSTALLER:-uv}" = uv ] || return 1
  pip_install "uv==$UV_VERSION" 2>/dev/null || return 1
  local uv sources cert
  uv="$(dirname "$PY")/uv"
  mapfile -t sources < <(uv_sources)
  cert=$("$PY" -m pip config get global.cert 2>/dev/null || true)
  # unsafe-best-match: pick a pin from whichever source has it, as pip does (uv's default takes a
  # package's versions from the first index that lists it); bytecode compiled as pip does.
  SSL_CERT_FILE=${SSL_CERT_FILE:-$cert} UV_NO_PROGRESS=1 "$uv" pip install --quiet --python "$PY" \
    --index-strategy unsafe-best-match --compile-bytecode "${sources[@]}" -r "$LOCK"
}

if ! with_uv; then
  [ "${DOODLEFLOW_INSTALLER:-uv}" = pip ] || echo "note: uv unavailable or failed; installing with pip" >&2
  pip_install -r "$LOCK"
fi
# The editable install of doodleflow itself (setuptools package-dir mapping), with pip as before.
pip_install --no-deps --no-build-isolation -e .
