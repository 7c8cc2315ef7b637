#!/usr/bin/env bash
# Installs parafine's build and test dependencies from Debian/Ubuntu packages.
# Uses sudo when not root. Safe to re-run.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  libeigen3-dev libhdf5-dev libopenblas-openmp-dev libdnnl-dev libboost-program-options-dev
  libgtest-dev libjpeg-dev libpng-dev
  nlohmann-json3-dev libzip-dev   # Keras model configs (JSON) and .keras archives (zip)
  python3 python3-numpy python3-h5py python3-torch   # the independent reference in tests/
  python3-matplotlib python3-pil   # evaluate --report and plot-history pictures (launch/parafine_plot.py)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
