#!/usr/bin/env bash
# Runs every check and test of the project, from a fresh clone.
# Installs what it needs: the npm packages of the interop tests (from the
# committed lock file) and, for browser tests, Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts (seconds since this script began), so a
# run's log shows where its time went.
step() { printf '\n==> %s (at %d s)\n' "$*" "$SECONDS"; }

# A fresh clone gains nothing from incremental compilation's caches (5.5 GB
# of target/ in a clean run), and CI machines have little disk to spare.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "formatting"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "feature matrix: hub-runtime with the server only, the client only, neither"
for features in "--features server" "--features client" ""; do
  # shellcheck disable=SC2086 # one flag and its value, or nothing
  cargo clippy -p hub-runtime --no-default-features $features -- -D warnings
done

step "docs: every crate's documentation builds without a warning"
# Broken and private intra-doc links, bad code blocks: what docs.rs (which
# builds hub-runtime with all features and `--cfg docsrs`, on nightly)
# would show broken. Stable here: the same rustdoc lints, no extra toolchain.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

# The declared rust-version is tested: on that exact toolchain, either the
# one running this script (then every step here tests it) or one rustup has.
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
msrv_toolchain=$msrv
case "$msrv" in *.*.*) ;; *) msrv_toolchain="$msrv.0" ;; esac
if rustc --version | grep -q "^rustc $msrv_toolchain "; then
  step "MSRV $msrv: the active toolchain, every step here tests it"
else
  step "MSRV $msrv: hub-macros and hub-runtime, all features, on Rust $msrv_toolchain"
  if ! rustup run "$msrv_toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$msrv_toolchain" --profile minimal
  fi
  cargo +"$msrv_toolchain" check -p hub-macros -p hub-runtime --all-features --all-targets
fi

step "packaging: hub-macros and hub-runtime as .crate files, each built from its package"
# Packaged together, hub-runtime's build resolves hub-macros from the
# freshly packaged crate (cargo's temporary local registry), not crates.io.
# Cargo reuses a crate it unpacked from that registry before, even when the
# package changed under the same version: forget earlier unpacks (the
# temporary registries' source directories are the ones named "-HASH").
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/hub-macros-*
cargo package -p hub-macros -p hub-runtime --allow-dirty

if [ -f tests/interop/package-lock.json ]; then
  step "npm packages of the interop tests"
  if ! command -v node >/dev/null 2>&1; then
    echo "node is required for the interop tests" >&2
    exit 1
  fi
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x /usr/bin/chromium ]; then
  step "Debian's chromium, for the clock page test"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if ! command -v redis-server >/dev/null 2>&1; then
  step "Debian's redis-server, for the scale-out tests (each test starts its own)"
  apt-get update
  apt-get install -y redis-server
fi

step "Python packages of the interop tests (pysignalr, signalrcore)"
python_env=target/interop-python
python_requirements=tests/interop/python/requirements.txt
if ! cmp -s "$python_requirements" "$python_env/requirements.txt" 2>/dev/null; then
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1 \
    || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    apt-get update
    apt-get install -y python3 python3-venv
  fi
  rm -rf "$python_env"
  python3 -m venv "$python_env"
  "$python_env/bin/pip" install --quiet --disable-pip-version-check -r "$python_requirements"
  cp "$python_requirements" "$python_env/requirements.txt"
fi

step "tests"
cargo test --workspace --no-fail-fast

step "disk: what this run wrote under target/"
du -sh target
step "done"
