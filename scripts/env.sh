# Sourced by the scripts: where tools and build outputs live, and how tests find the browser.
# shellcheck shell=bash

CATDOG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CATDOG_ROOT
# A persistent target dir: a Burn build from cold takes tens of minutes on two cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/catdog-target}"
# npm's binaryen (wasm-opt 132) lives here, outside the repository.
export CATDOG_TOOLS="${CATDOG_TOOLS:-$HOME/.cache/catdog-tools}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$HOME/.cargo/bin:$CATDOG_TOOLS/node_modules/.bin:$PATH"

# Pinned tool versions. wasm-bindgen must equal the crate pinned in Cargo.toml and Trunk.toml.
export WASM_BINDGEN_VERSION=0.2.130
export TRUNK_VERSION=0.21.14
export BINARYEN_VERSION=132.0.0

# wasm-bindgen-test: run wasm32 tests in headless Chromium through ChromeDriver.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export CHROME_BIN="${CHROME_BIN:-/usr/bin/chromium}"
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$CATDOG_ROOT/tests/webdriver.json"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
# Trunk: no update check (there is no network to ask).
export TRUNK_SKIP_VERSION_CHECK=true

# Builds the release site (fat LTO, as shipped) into $1 unless one is there: the benchmarks'
# site, tens of minutes from cold.
release_site() {
  if [ ! -f "$1/index.html" ]; then
    echo "== building the release site into $1 (trunk build --release)"
    "$CATDOG_ROOT/scripts/install-tools"
    trunk build --release --dist "$1"
  fi
}
