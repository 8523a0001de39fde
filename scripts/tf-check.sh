#!/usr/bin/env bash
# Static checks and plan-level tests of terraform/, fully offline: fmt, init (from the local provider
# mirror), validate, `terraform test` (mocked provider) and checkov. One summary line per step.
set -euo pipefail
cd "$(dirname "$0")/.."

TF_DIR=terraform
PLUGIN_MIRROR="${SWIFTFLEET_TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
CHECKOV=checkov
if [ -x .venv/bin/checkov ]; then CHECKOV=.venv/bin/checkov; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Providers only from the mirror (no registry), and no version check call home.
cat >"$work/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path = "$PLUGIN_MIRROR"
  }
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# A private data dir: never touch the workspace selection of a live cluster in terraform/.terraform.
export TF_DATA_DIR="$work/tfdata"
# checkov: no guideline/policy download, no PyPI version check.
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE

# Run every step without a network where the kernel lets us: an accidental download fails loudly.
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); fi

# step NAME SUMMARY-REGEX COMMAND...: run quietly; print one line, or the whole output on failure.
step() {
  local name=$1 pattern=$2 start=$SECONDS out summary
  shift 2
  if out=$("${offline[@]}" "$@" 2>&1); then
    summary=$(grep -E -m1 "$pattern" <<<"$out" || true)
    printf 'tf-check: %-9s ok   %3ss  %s\n' "$name" "$((SECONDS - start))" "$summary"
  else
    printf '%s\n' "$out"
    printf 'tf-check: %-9s FAILED after %ss\n' "$name" "$((SECONDS - start))"
    exit 1
  fi
}

[ -d "$PLUGIN_MIRROR" ] || { echo "tf-check: provider mirror $PLUGIN_MIRROR is missing" >&2; exit 1; }

step fmt      '.^'                       terraform -chdir="$TF_DIR" fmt -check -recursive -diff
step init     'installed|Installing'     terraform -chdir="$TF_DIR" init -input=false -no-color -backend=false -lockfile=readonly
step validate 'valid'                    terraform -chdir="$TF_DIR" validate -no-color
step test     'passed'                   terraform -chdir="$TF_DIR" test -no-color
step checkov  'Passed checks'            "$CHECKOV" --directory "$TF_DIR" --framework terraform --skip-download \
  --download-external-modules false --skip-path 'tests/moto' --compact --quiet
# checkov leaves out resources whose count is 0 under the defaults: scan the optional ones turned on too.
printf 'shared_fs = "efs"\n' >"$work/optional.tfvars"
step checkov+ 'Passed checks'            "$CHECKOV" --directory "$TF_DIR" --framework terraform --skip-download \
  --download-external-modules false --skip-path 'tests/moto' --compact --quiet --var-file "$work/optional.tfvars"
