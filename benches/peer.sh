#!/usr/bin/env bash
# Peer benchmark: our wgpu detector (`cargo bench --bench detect`) next to onnxruntime on the CPU
# (benches/peer_ort.py: the same RetinaFace-mnet025 ONNX model, numpy pre/post-processing), on the
# same image and network input sizes, in one run, then a table per size.
#
#   bash benches/peer.sh [IMAGE] [RUNS]          (from the repo root, or anywhere)
#
# IMAGE defaults to ../shared/testdata/images/worlds_largest_selfie.jpg (relative to the repo root),
# RUNS to 10. Environment:
#   PEER_SIZES    network input sizes, WxH,WxH            (default 640x640,1920x1080)
#   PEER_THREADS  onnxruntime intra_op_num_threads        (default 2)
#   PEER_VENV     the Python virtualenv used              (default /tmp/retinaface-peer-venv)
#   PEER_LOGS     folder for the two full outputs         (default: a new mktemp -d folder)
#   RETINAFACE_ONNX  the ONNX model (default ../shared/weights/retinaface_mnet025.onnx)
#   CARGO_TARGET_DIR, RETINAFACE_WEIGHTS are passed on to cargo / our bench as usual;
#   XDG_RUNTIME_DIR is set to /tmp/xdg (created, mode 700) when unset, for wgpu's Vulkan loader.
#
# Installs: on first use, creates the virtualenv $PEER_VENV (python3 -m venv) and pip-installs
# onnxruntime, numpy and opencv-python-headless into it from PyPI. Nothing is installed globally
# and nothing in the repo is written. To remove it:  rm -rf /tmp/retinaface-peer-venv  (or your
# $PEER_VENV); pip's download cache, if you want it gone too, is ~/.cache/pip.
#
# Both sides resize the decoded image to each size outside the timed loop (peer_ort.py reproduces
# the image crate's Triangle filter that our bench uses, so the network inputs match to within a
# grey level on a few pixels) and use score threshold 0.9 with NMS 0.4. "ours" is the bench's mean
# wall time per detect; "ORT detect" the median over RUNS of preprocess + forward + postprocess.
set -euo pipefail

die() { echo "peer.sh: $*" >&2; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${1:-$repo/../shared/testdata/images/worlds_largest_selfie.jpg}
runs=${2:-10}
sizes=${PEER_SIZES:-640x640,1920x1080}
threads=${PEER_THREADS:-2}
venv=${PEER_VENV:-/tmp/retinaface-peer-venv}

[[ -f $image ]] || die "no image at $image"
image=$(cd "$(dirname "$image")" && pwd)/$(basename "$image")
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"
[[ $sizes =~ ^[0-9]+x[0-9]+(,[0-9]+x[0-9]+)*$ ]] || die "PEER_SIZES must look like 640x640,1920x1080"
command -v cargo >/dev/null || die "cargo not found"

# --- the Python side -------------------------------------------------------------------------
py=$venv/bin/python
if [[ ! -x $py ]]; then
    command -v python3 >/dev/null || die "python3 not found"
    echo "peer.sh: creating virtualenv $venv" >&2
    python3 -m venv "$venv" ||
        die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv); rm -rf $venv and retry"
fi
if ! "$py" -c 'import onnxruntime, numpy, cv2' 2>/dev/null; then
    echo "peer.sh: installing onnxruntime numpy opencv-python-headless into $venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check onnxruntime numpy opencv-python-headless
    "$py" -c 'import onnxruntime, numpy, cv2' || die "the packages in $venv do not import"
fi

# --- run both --------------------------------------------------------------------------------
if [[ -z ${XDG_RUNTIME_DIR:-} ]]; then
    export XDG_RUNTIME_DIR=/tmp/xdg
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
logs=${PEER_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/retinaface-peer.XXXXXX")}
mkdir -p "$logs"
ours_log=$logs/ours.txt
ort_log=$logs/ort.txt

echo "image $image, sizes $sizes, $runs runs, ORT $threads threads; full outputs in $logs" >&2
echo "running: cargo bench --bench detect -- --sizes $sizes --runs $runs --image $image" >&2
(cd "$repo" && cargo bench --bench detect -- --sizes "$sizes" --runs "$runs" --image "$image") \
    >"$ours_log" 2>"$logs/ours.stderr" || {
    tail -n 30 "$logs/ours.stderr" >&2
    die "cargo bench failed (see $logs/ours.stderr)"
}
echo "running: $py benches/peer_ort.py --image $image --sizes $sizes --runs $runs --threads $threads" >&2
"$py" "$repo/benches/peer_ort.py" --image "$image" --sizes "$sizes" --runs "$runs" --threads "$threads" \
    >"$ort_log" 2>"$logs/ort.stderr" || {
    tail -n 30 "$logs/ort.stderr" >&2
    die "peer_ort.py failed (see $logs/ort.stderr)"
}

# --- the table -------------------------------------------------------------------------------
grep -m1 '^adapter:' "$ours_log" || true
grep -m1 '^ORT onnxruntime' "$ort_log" || true
"$py" - "$ours_log" "$ort_log" "$sizes" "$runs" "$threads" <<'EOF'
import re, sys

ours_log, ort_log, sizes, runs, threads = sys.argv[1:]
ours, ort = {}, {}
pat = re.compile(r"^(\d+x\d+): (\d+) faces; wall ([\d.]+) ms/detect, process CPU ([\d.]+|n/a) ms/detect")
for line in open(ours_log):
    m = pat.match(line.strip())
    if m:
        ours[m[1]] = (int(m[2]), float(m[3]), m[4])
pat = re.compile(r"^ORT (\d+x\d+): (\d+) faces; forward ([\d.]+) ms, detect ([\d.]+) ms, "
                 r"detect mean ([\d.]+) ms, cpu ([\d.]+) ms")
for line in open(ort_log):
    m = pat.match(line.strip())
    if m:
        ort[m[1]] = (int(m[2]), float(m[3]), float(m[4]), float(m[6]))

head = (f"{'size':>10} | {'ours wall ms':>12} | {'ours CPU ms':>11} | {'ORT detect ms':>13} | "
        f"{'ORT fwd ms':>10} | {'ORT CPU ms':>10} | {'ours/ORT':>8} | {'faces ours':>10} | {'faces ORT':>9}")
print(head)
print("-" * len(head))
missing = False
for size in sizes.split(","):
    if size not in ours or size not in ort:
        print(f"{size:>10} | missing from {'our bench' if size not in ours else 'peer_ort.py'} output")
        missing = True
        continue
    fo, wall, cpu = ours[size]
    fr, fwd, det, ocpu = ort[size]
    flag = "" if fo == fr else "  <- face counts differ"
    print(f"{size:>10} | {wall:>12.2f} | {cpu:>11} | {det:>13.2f} | {fwd:>10.2f} | {ocpu:>10.1f} | "
          f"{wall / det:>8.2f} | {fo:>10} | {fr:>9}{flag}")
print(f"({runs} runs; ours: mean wall per detect; ORT: median, {threads} intra-op threads; "
      "CPU = process CPU time per detect)")
sys.exit(1 if missing else 0)
EOF
