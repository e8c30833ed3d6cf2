#!/usr/bin/env bash
# The browser test (README, "In the browser"): the page built by web/build.sh, in headless
# Chromium on its software WebGPU adapter (SwiftShader), must find the native CLI's faces on
# two golden photos: a JPEG (Chromium's decoder against ours) and a PNG.
#
# Needs: web/build.sh run, `npm ci` in web/test, Debian's chromium, and the shared test data
# (../shared beside the checkout, or RETINAFACE_SHARED). Extra arguments go to run.mjs
# (e.g. `--repeat 5` to time more detections).
set -euo pipefail
cd "$(dirname "$0")/../.."

shared=${RETINAFACE_SHARED:-../shared}
weights=$shared/weights/retinaface_mnet025.safetensors
[ -f web/dist/index.html ] || { echo "web/test/run.sh: run web/build.sh first" >&2; exit 2; }
[ -f "$weights" ] || { echo "web/test/run.sh: $weights not found" >&2; exit 2; }

# The reference: the native CLI (the debug build `cargo test` makes; built here if missing).
cargo build --quiet --bin retinaface
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# Threshold 0.5, the golden data's, for more faces to compare than retina-face's 0.9 keeps.
exec node web/test/run.mjs --dist web/dist --shared "$shared" \
  --cli "$target_dir/debug/retinaface" --weights "$weights" --threshold 0.5 "$@" \
  testdata/images/worlds_largest_selfie.jpg testdata/images/tilted_head.png
