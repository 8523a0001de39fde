#!/bin/sh
# The setup.sh of the manual flow (bench/manual_vs_kit.py): what an engineer runs on each node by hand.
#   sh setup.sh UV_VERSION MS_SWIFT_VERSION TORCH_VERSION [CA_FILE ...]
# Same sources, pins and package cache as the kit's uv and ms_swift roles: uv from PyPI into a small venv,
# ms-swift in a uv environment (~/swift-env) with the CPU torch wheel from the local wheelhouse (/opt/wheels),
# uv's cache in /var/cache/swiftfleet/uv-<user> (the directory every local node shares). The CA files are the
# controller's (this machine's egress re-signs TLS); the kit's uv role installs the same ones.
set -eu
uv_version=$1 ms_swift_version=$2 torch_version=$3
shift 3
for ca in "$@"; do
    dest="/usr/local/share/ca-certificates/$(basename "$ca")"
    cmp -s "$ca" "$dest" || { cp "$ca" "$dest" && new_ca=1; }
done
[ -z "${new_ca:-}" ] || update-ca-certificates >/dev/null
export UV_CACHE_DIR="/var/cache/swiftfleet/uv-$(id -un)" UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
uv_env="$HOME/.local/share/uv-env"
if ! "$uv_env/bin/uv" --version 2>/dev/null | grep -qE "^uv $uv_version( |\$)"; then
    python3 -m venv "$uv_env"
    "$uv_env/bin/pip" install -q --disable-pip-version-check "uv==$uv_version"
fi
[ -x "$HOME/swift-env/bin/python" ] || "$uv_env/bin/uv" venv -q --python python3 --seed "$HOME/swift-env"
"$uv_env/bin/uv" pip install -q --python "$HOME/swift-env/bin/python" \
    /opt/wheels/torch-"$torch_version"+cpu-*.whl "ms-swift==$ms_swift_version"
