#!/bin/sh
# install-deps.sh: install what llamapipe needs to build, test and run its
# demo on a Debian machine, skipping whatever is already there.
#
#   Debian packages  through apt-get (needs root; otherwise prints the command)
#   Python packages  for the reference tests, into the venv build/venv
#                    (pinned in t/requirements.txt); not with --debian-only
set -eu
cd "$(dirname "$0")/.."

DEBS="build-essential pkg-config libsentencepiece-dev sentencepiece libjq-dev jq
libxxhash-dev libzstd-dev zstd libopenblas-dev mandoc python3 python3-venv
gnuplot-nox openmpi-bin libopenmpi-dev time"

missing=
for p in $DEBS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "install-deps: apt-get install$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	else
		echo "install-deps: missing Debian packages; run as root:" >&2
		echo "  apt-get install$missing" >&2
		exit 1
	fi
fi

# Python reference stack in a venv of our own: never touches the system's.
[ "${1:-}" = --debian-only ] && exit 0
PY=${PYTHON3:-python3}
VENV=build/venv
stamp=$VENV/.requirements
if ! cmp -s t/requirements.txt "$stamp" 2>/dev/null; then
	echo "install-deps: python packages into $VENV"
	rm -rf "$VENV"
	"$PY" -m venv "$VENV"
	"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r t/requirements.txt
	cp t/requirements.txt "$stamp"
fi
