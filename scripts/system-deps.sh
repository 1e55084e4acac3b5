#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when we can
# (root with apt-get); otherwise says exactly what is missing and carries on,
# because the Python side still works without them (the tests that need a
# missing component skip locally, and fail in CI: see tests/conftest.py).
set -u
PKGS="libportaudio2 libsndfile1 jackd2 puredata-core liblo-tools fluidsynth fluid-soundfont-gm"
# The DAW plugin (plugin/): JUCE 7 and its build needs, the LV2 SDK, and the
# hosts its tests run it in (jalv under JACK; lilv-utils for lv2ls).
PKGS="$PKGS cmake g++ pkg-config juce-modules-source juce-tools lv2-dev libasound2-dev libfreetype-dev libcurl4-gnutls-dev libjack-jackd2-dev jalv lilv-utils"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "genredream: installing Debian packages:$missing"
  # jackd2 asks about real-time priority unless told not to.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq $missing >/dev/null || {
    echo "genredream: apt-get failed for:$missing" >&2; exit 1; }
else
  echo "genredream: these system packages are missing:$missing" >&2
  echo "  on Debian/Ubuntu: sudo apt-get install$missing" >&2
  echo "  on macOS (Homebrew): brew install portaudio libsndfile jack pure-data liblo fluid-synth" >&2
  echo "  tests that need them will be skipped." >&2
fi
exit 0
