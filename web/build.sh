#!/usr/bin/env bash
# Builds the demo page into web/dist/: the detector compiled to wasm32 (WebGPU), the JS glue
# written by wasm-bindgen, the page itself, and the MobileNet0.25 weights when they are found
# locally. Serve web/dist/ with any static web server (see README.md, "In the browser").
#
# Needs: rustup target add wasm32-unknown-unknown
#        cargo install wasm-bindgen-cli --version <the wasm-bindgen version in Cargo.lock>
set -euo pipefail
cd "$(dirname "$0")"
root=..

# The CLI's JS glue must come from exactly the wasm-bindgen crate version the module links.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "web/build.sh: need wasm-bindgen-cli $want (found: ${have:-none});" \
       "run: cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

cargo build --release -p retinaface-web --target wasm32-unknown-unknown
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

rm -rf dist
mkdir -p dist/pkg
wasm-bindgen --target web --no-typescript --out-dir dist/pkg \
  "$target_dir/wasm32-unknown-unknown/release/retinaface_web.wasm"
cp index.html main.js style.css dist/

# The page fetches retinaface_mnet025.safetensors next to itself unless ?weights= says
# otherwise; copy it in when it is where the detector looks for it natively.
weights=retinaface_mnet025.safetensors
for dir in "$root/weights" "${XDG_CACHE_HOME:-$HOME/.cache}/retinaface-wgpu" "$root/../shared/weights"; do
  if [ -f "$dir/$weights" ]; then
    cp "$dir/$weights" dist/
    break
  fi
done
[ -f "dist/$weights" ] || echo "web/build.sh: $weights not found; run \`retinaface fetch-weights mnet025\` and build again, or copy it into web/dist/" >&2
echo "web/build.sh: built $(cd dist && pwd) ($(du -sh dist | cut -f1))"
