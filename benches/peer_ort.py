#!/usr/bin/env python3
"""Peer benchmark: RetinaFace-MobileNet0.25 detection with onnxruntime (CPU EP) + numpy.

The same detector as `cargo bench --bench detect`, done the usual Python way, to put our numbers
next to a well-known CPU runtime on the same image and network input sizes:

- decode: OpenCV `imread(IMREAD_COLOR)` (8-bit BGR; what the golden data and our decoder match),
  falling back to PIL when cv2 is missing;
- resize to each WxH before timing (our bench also resizes outside its timed loop). The default
  `--resize image` reproduces the `image` crate's `resize(.., FilterType::Triangle)` that our bench
  uses (separable triangle filter, widened when downscaling, vertical pass in f32 then horizontal,
  rounded to u8), so both sides see (nearly) the same pixels; `--resize cv2` uses
  `cv2.resize(.., INTER_LINEAR)` instead (no antialiasing when downscaling);
- timed detect = preprocess (u8 BGR HWC -> float32 NCHW minus (104, 117, 123)) + forward +
  postprocess (decode with variances 0.1/0.2, score > threshold, top 5000, py_cpu_nms with +1
  areas at IoU 0.4, keep 750). Priors are made once per size, as our detector caches its plan per
  size. `conf` is already softmax probabilities in the ONNX output.

For each size, after 2 warm-up detects, `--runs` detects are timed; one line per size:

  ORT 640x640: 16 faces; forward 19.8 ms, detect 23.1 ms, detect mean 23.4 ms, cpu 45.0 ms (10 runs, 2 threads)

forward/detect are medians over the runs, `detect mean` the mean (our bench reports means), `cpu`
the process CPU time per detect (like our bench's "process CPU"). `--check` also prints every
detection (score, box x1 y1 x2 y2 in network-input pixels).

Needs numpy and onnxruntime (and opencv-python-headless, or Pillow); `benches/peer.sh` installs
them in a virtualenv and runs this next to our bench.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

try:
    import cv2
except ImportError:  # pragma: no cover - PIL fallback
    cv2 = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_IMAGE = os.path.join(REPO, "..", "shared", "testdata", "images", "worlds_largest_selfie.jpg")
DEFAULT_MODEL = os.path.join(REPO, "..", "shared", "weights", "retinaface_mnet025.onnx")

MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
VARIANCES = (0.1, 0.2)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
PRE_NMS_TOP_K = 5000
KEEP_TOP_K = 750
WARMUP = 2


# ---------------------------------------------------------------------------------------------
# image


def load_bgr(path):
    """8-bit BGR HWC, as OpenCV's imread(IMREAD_COLOR)."""
    if cv2 is not None:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            sys.exit(f"peer_ort: cannot read image {path}")
        return img
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _triangle_weights(n_in, n_out):
    """The `image` crate's (0.25) per-axis Triangle resampling weights, as an (n_out, n_in) matrix."""
    ratio = np.float32(n_in) / np.float32(n_out)
    sratio = max(ratio, np.float32(1.0))
    support = np.float32(1.0) * sratio
    m = np.zeros((n_out, n_in), dtype=np.float32)
    for o in range(n_out):
        centre = (np.float32(o) + np.float32(0.5)) * ratio
        left = min(max(int(np.floor(centre - support)), 0), n_in - 1)
        right = min(max(int(np.ceil(centre + support)), left + 1), n_in)
        c = centre - np.float32(0.5)
        idx = np.arange(left, right, dtype=np.float32)
        x = np.abs((idx - c) / sratio)
        w = np.where(x < 1.0, np.float32(1.0) - x, np.float32(0.0)).astype(np.float32)
        m[o, left:right] = w / w.sum(dtype=np.float32)
    return m


def resize_like_image_crate(img, w, h):
    """`image::imageops::resize(img, w, h, FilterType::Triangle)`: vertical pass to f32, then
    horizontal pass rounded (half away from zero) and clamped to u8. Summation order differs from
    the crate's loop, so a rare pixel can differ by one grey level."""
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img.copy()
    wy = _triangle_weights(ih, h)
    wx = _triangle_weights(iw, w)
    src = img.astype(np.float32)
    tmp = np.einsum("oi,iwc->owc", wy, src, optimize=True)
    out = np.einsum("oi,hic->hoc", wx, tmp, optimize=True)
    out = np.clip(out, 0.0, 255.0)
    out = np.floor(out + np.float32(0.5))  # f32::round for non-negative values
    return out.astype(np.uint8)


def resize(img, w, h, method):
    if method == "image":
        return resize_like_image_crate(img, w, h)
    if cv2 is None:
        sys.exit("peer_ort: --resize cv2 needs opencv-python-headless")
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------------
# detector


def priors(w, h):
    """(N, 4) cx, cy, pw, ph normalised; level stride 8, 16, 32, row-major, two sizes per cell."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        fh, fw = -(-h // step), -(-w // step)
        ys, xs = np.meshgrid(np.arange(fh, dtype=np.float64), np.arange(fw, dtype=np.float64), indexing="ij")
        cx = ((xs + 0.5) * step / w).reshape(-1, 1)
        cy = ((ys + 0.5) * step / h).reshape(-1, 1)
        cell = []
        for m in sizes:
            cell.append(np.concatenate([cx, cy, np.full_like(cx, m / w), np.full_like(cy, m / h)], axis=1))
        out.append(np.stack(cell, axis=1).reshape(-1, 4))
    return np.concatenate(out, axis=0).astype(np.float32)


def py_cpu_nms(dets, thresh):
    """Greedy NMS (the reference's py_cpu_nms): +1 areas, remove IoU > thresh."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        iw = np.maximum(0.0, xx2 - xx1 + 1)
        ih = np.maximum(0.0, yy2 - yy1 + 1)
        inter = iw * ih
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


class OrtRetinaFace:
    def __init__(self, model, threads, threshold, nms):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name
        self.outputs = ["loc", "conf", "landms"]
        self.threshold = threshold
        self.nms = nms
        self._priors = {}

    def preprocess(self, bgr):
        x = bgr.astype(np.float32) - MEAN_BGR
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def forward(self, x):
        return self.sess.run(self.outputs, {self.input: x})

    def postprocess(self, loc, conf, landms, w, h):
        pri = self._priors.get((w, h))
        if pri is None:
            pri = self._priors[(w, h)] = priors(w, h)
        scores = conf[0, :, 1]
        inds = np.where(scores > self.threshold)[0]
        scores = scores[inds]
        order = scores.argsort()[::-1][:PRE_NMS_TOP_K]
        inds, scores = inds[order], scores[order]
        p = pri[inds]
        lo = loc[0, inds]
        v0, v1 = VARIANCES
        centre = p[:, :2] + lo[:, :2] * v0 * p[:, 2:]
        size = p[:, 2:] * np.exp(lo[:, 2:] * v1)
        tl = centre - size / 2
        scale = np.array([w, h, w, h], dtype=np.float32)
        boxes = np.concatenate([tl, tl + size], axis=1) * scale
        lm = landms[0, inds].reshape(-1, 5, 2)
        lm = (p[:, None, :2] + lm * v0 * p[:, None, 2:]) * np.array([w, h], dtype=np.float32)
        dets = np.hstack((boxes, scores[:, None])).astype(np.float32, copy=False)
        keep = py_cpu_nms(dets, self.nms)[:KEEP_TOP_K]
        return dets[keep], lm[keep]

    def detect(self, bgr, times=None):
        h, w = bgr.shape[:2]
        x = self.preprocess(bgr)
        t0 = time.perf_counter()
        loc, conf, landms = self.forward(x)
        t1 = time.perf_counter()
        if times is not None:
            times.append((t1 - t0) * 1e3)
        return self.postprocess(loc, conf, landms, w, h)


# ---------------------------------------------------------------------------------------------


def parse_sizes(s):
    sizes = []
    for part in s.split(","):
        w, _, h = part.strip().partition("x")
        sizes.append((int(w), int(h)))
    return sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    ap.add_argument("--model", default=os.environ.get("RETINAFACE_ONNX", DEFAULT_MODEL))
    ap.add_argument("--sizes", default="640x640,1920x1080", help="network input sizes, WxH,WxH")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra_op_num_threads")
    ap.add_argument("--threshold", type=float, default=0.9, help="score threshold (strict >)")
    ap.add_argument("--nms", type=float, default=0.4, help="NMS IoU threshold")
    ap.add_argument("--resize", choices=("image", "cv2"), default="image",
                    help="image: the image crate's Triangle filter, as our bench; cv2: INTER_LINEAR")
    ap.add_argument("--check", action="store_true", help="print every detection")
    args = ap.parse_args()
    if args.runs < 1:
        sys.exit("peer_ort: --runs must be at least 1")

    det = OrtRetinaFace(args.model, args.threads, args.threshold, args.nms)
    photo = load_bgr(args.image)
    print(f"ORT onnxruntime {ort.__version__}, numpy {np.__version__}, "
          f"decoder {'cv2 ' + cv2.__version__ if cv2 is not None else 'PIL'}, resize {args.resize}, "
          f"image {os.path.basename(args.image)} {photo.shape[1]}x{photo.shape[0]}, threshold {args.threshold}")
    for w, h in parse_sizes(args.sizes):
        img = resize(photo, w, h, args.resize)
        for _ in range(WARMUP):
            det.detect(img)
        fwd, total = [], []
        c0 = time.process_time()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            dets, _ = det.detect(img, fwd)
            total.append((time.perf_counter() - t0) * 1e3)
        cpu = (time.process_time() - c0) * 1e3 / args.runs
        print(f"ORT {w}x{h}: {len(dets)} faces; forward {statistics.median(fwd):.2f} ms, "
              f"detect {statistics.median(total):.2f} ms, detect mean {statistics.fmean(total):.2f} ms, "
              f"cpu {cpu:.1f} ms ({args.runs} runs, {args.threads} threads)", flush=True)
        if args.check:
            for d in dets:
                print(f"  {d[4]:.6f}  {d[0]:9.3f} {d[1]:9.3f} {d[2]:9.3f} {d[3]:9.3f}")


if __name__ == "__main__":
    main()
