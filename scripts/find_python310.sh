#!/usr/bin/env bash
# Print the path of a working Python 3.10 interpreter (lava-nc 0.10.0 needs >=3.10,<3.11).
# Order: $PYTHON310, python3.10 on PATH (if it really runs), pyenv installs.
set -u
try() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { command -v "$1" 2>/dev/null || echo "$1"; exit 0; }; }
[ -n "${PYTHON310:-}" ] && try "$PYTHON310"
try python3.10
for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python /usr/bin/python3.10 /usr/local/bin/python3.10; do
  [ -x "$p" ] && try "$p"
done
echo "error: no Python 3.10 found (the Lava venv needs it: lava-nc 0.10.0 requires >=3.10,<3.11)." >&2
echo "       install one (e.g. 'pyenv install 3.10') or set PYTHON310=/path/to/python3.10" >&2
exit 1
