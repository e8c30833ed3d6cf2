"""Synthetic WIDER FACE ground truth and predictions for tests/eval_widerface.rs, and the APs
the official Python evaluation prints for them.

Run once (numpy, scipy and tqdm installed):

    python tests/data/widerface/make_reference.py --evaluation PATH/TO/evaluation.py

where evaluation.py is widerface_evaluate/evaluation.py of biubug6/Pytorch_Retinaface (commit
b984b4b775b2c4dced95c1eadd195a5c7d32a60b; WiderFace-Evaluation's is the same but for its
prediction-file reader). Its Cython `bbox` extension is replaced by `bbox_overlaps` below, a
line-for-line numpy/Python port of box_overlaps.pyx (same operations, in the same order, on
float64), and its unused `from IPython import embed` by a stub. The script (re)writes the
scenario folders next to itself and prints each scenario's three APs with repr(), which round-
trips float64 exactly; tests/eval_widerface.rs hard-codes those numbers.
"""

import argparse
import contextlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import types

import numpy as np
from scipy.io import savemat

HERE = os.path.dirname(os.path.abspath(__file__))


def bbox_overlaps(boxes, query_boxes):
    """box_overlaps.pyx: IoU with +1 on every width and height; min/max as Cython emits them."""
    n, k = boxes.shape[0], query_boxes.shape[0]
    overlaps = np.zeros((n, k), dtype=np.float64)
    for kk in range(k):
        q = [float(v) for v in query_boxes[kk]]
        box_area = (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
        for nn in range(n):
            b = [float(v) for v in boxes[nn]]
            iw = (q[2] if q[2] < b[2] else b[2]) - (q[0] if q[0] > b[0] else b[0]) + 1
            if iw > 0:
                ih = (q[3] if q[3] < b[3] else b[3]) - (q[1] if q[1] > b[1] else b[1]) + 1
                if ih > 0:
                    ua = float((b[2] - b[0] + 1) * (b[3] - b[1] + 1) + box_area - iw * ih)
                    overlaps[nn, kk] = iw * ih / ua
    return overlaps


def load_evaluation(path):
    sys.modules["bbox"] = types.SimpleNamespace(bbox_overlaps=bbox_overlaps)
    sys.modules["IPython"] = types.SimpleNamespace(embed=None)
    spec = importlib.util.spec_from_file_location("evaluation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cell(items):
    """A column cell array (n x 1), as the official files hold their lists."""
    c = np.empty((len(items), 1), dtype=object)
    for i, x in enumerate(items):
        c[i, 0] = x
    return c


def write_scenario(root, images, preds):
    """images: [(event, name, boxes (n x 4), [easy, medium, hard] index columns)];
    preds: {(event, name): (file name, text)}."""
    if os.path.isdir(root):
        shutil.rmtree(root)
    gt_dir, pred_dir = os.path.join(root, "gt"), os.path.join(root, "pred")
    os.makedirs(gt_dir)
    events = []
    for ev, *_ in images:
        if ev not in events:
            events.append(ev)
    per_event = [[im for im in images if im[0] == ev] for ev in events]
    savemat(
        os.path.join(gt_dir, "wider_face_val.mat"),
        {
            "event_list": cell(events),
            "file_list": cell([cell([im[1] for im in ims]) for ims in per_event]),
            "face_bbx_list": cell([cell([im[2] for im in ims]) for ims in per_event]),
        },
        do_compression=True,
    )
    for s, setting in enumerate(["easy", "medium", "hard"]):
        savemat(
            os.path.join(gt_dir, "wider_%s_val.mat" % setting),
            {"gt_list": cell([cell([im[3][s] for im in ims]) for ims in per_event])},
            do_compression=True,
        )
    for (ev, _name), (file_name, text) in preds.items():
        os.makedirs(os.path.join(pred_dir, ev), exist_ok=True)
        with open(os.path.join(pred_dir, ev, file_name), "w", newline="") as f:
            f.write(text)
    for ev in events:
        os.makedirs(os.path.join(pred_dir, ev), exist_ok=True)
    return gt_dir, pred_dir


def pred_text(name, dets, eol="\n", trailing=""):
    lines = [name, str(len(dets))]
    lines += [" ".join(repr(float(v)) for v in d) + trailing for d in dets]
    return eol.join(lines) + eol


def col(idx, dtype=np.uint8):
    if not idx:
        return np.zeros((0, 0), dtype=dtype)
    return np.array(idx, dtype=dtype).reshape(-1, 1)


def mixed():
    """Hand-made cases: ignored faces, duplicates, ties, unsorted files, empty images."""
    i32 = lambda b: np.array(b, dtype=np.int32).reshape(-1, 4)
    images = [
        # Face 4 is counted by no setting (an "invalid" face); 3 only by hard.
        ("0--Parade", "0_Parade_marchingband_1_5",
         i32([[10, 10, 40, 50], [100, 20, 30, 30], [200, 200, 12, 14], [300, 40, 60, 60]]),
         [col([1]), col([1, 2]), col([1, 2, 3])]),
        # No faces at all, but predictions: they shift the score range only.
        ("0--Parade", "0_Parade_Parade_0_7", np.zeros((0, 0)), [col([]), col([]), col([])]),
        # Faces, and an empty prediction file.
        ("1--Handshaking", "1_Handshaking_a_2",
         np.array([[5.0, 5.0, 20.0, 20.0], [50.0, 50.0, 25.5, 30.25]]),
         [col([1], np.uint16), col([1, 2], np.uint16), col([1, 2], np.uint16)]),
        # Equal scores, a file not sorted by score, one box overlapping two faces equally.
        ("1--Handshaking", "1_Handshaking_b_3",
         i32([[0, 0, 20, 20], [30, 0, 20, 20], [100, 100, 40, 40], [150, 150, 8, 8]]),
         [col([1, 3]), col([1, 2, 3]), col([1, 2, 3, 4])]),
        # The best-scoring prediction of all is on an ignored face: no proposal at the top
        # threshold, a NaN precision there.
        # Faces 3 and 4 are the same box (WIDER has such twins): a prediction on them takes
        # the first, which medium ignores.
        ("2--Demonstration", "2_Demonstration_c_9",
         i32([[60, 60, 50, 50], [200, 60, 10, 10], [300, 300, 40, 40], [300, 300, 40, 40]]),
         [col([1]), col([1, 4]), col([1, 2, 3, 4])]),
    ]
    preds = {
        ("0--Parade", "0_Parade_marchingband_1_5"): ("0_Parade_marchingband_1_5.txt", pred_text(
            "0_Parade_marchingband_1_5", [
                [10.5, 10.25, 40.0, 49.5, 0.91],
                [11.0, 11.0, 39.0, 48.0, 0.88],   # duplicate of face 1
                [301.0, 41.0, 58.0, 60.0, 0.85],  # the never-counted face 4
                [200.0, 201.0, 12.0, 13.0, 0.6],
                [99.0, 21.0, 31.0, 29.0, 0.4],
                [500.0, 500.0, 20.0, 20.0, 0.15],  # nothing there
            ], trailing=" ")),  # test_widerface.py ends each box line with a space
        ("0--Parade", "0_Parade_Parade_0_7"): ("0_Parade_Parade_0_7.txt", pred_text(
            "0_Parade_Parade_0_7", [[1.0, 2.0, 30.0, 30.0, 0.05], [9.0, 9.0, 9.0, 9.0, 0.93]])),
        ("1--Handshaking", "1_Handshaking_a_2"): ("1_Handshaking_a_2.txt", "1_Handshaking_a_2\n0\n"),
        # Named by its first line, with a path and .jpg, whatever the file is called; CRLF.
        ("1--Handshaking", "1_Handshaking_b_3"): ("renamed.txt", pred_text(
            "1--Handshaking/1_Handshaking_b_3.jpg", [
                [0.0, 0.0, 20.0, 20.0, 0.7],
                [15.0, 0.0, 20.0, 20.0, 0.7],      # IoU 0.38 with faces 1 and 2
                [101.0, 99.0, 40.0, 41.0, 0.5],
                [30.0, 1.0, 19.0, 20.0, 0.75],     # better than the line above it
                [150.0, 150.0, 8.0, 8.0, 0.5],
                [100.0, 100.0, 40.0, 40.0, 0.3],   # second on face 3
            ], eol="\r\n")),
        ("2--Demonstration", "2_Demonstration_c_9"): ("2_Demonstration_c_9.txt", pred_text(
            "2_Demonstration_c_9", [
                [200.0, 60.0, 10.0, 10.0, 0.97],   # the ignored face (easy, medium)
                [62.0, 58.0, 50.0, 52.0, 0.8],
                [301.0, 300.0, 40.0, 40.0, 0.65],
                [0.0, 0.0, 3.0, 3.0, 0.2],
            ])),
    }
    return images, preds


def random_scenario(seed=20240611):
    """Many faces and predictions: ties (scores on a 0.005 grid), duplicates, near misses,
    float boxes, a few unsorted files; enough recall steps for numpy's pairwise sum."""
    rng = np.random.default_rng(seed)
    images, preds = [], {}
    for e, ev in enumerate(["0--Parade", "12--Group", "7--Cheering"]):
        for k in range(9):
            name = "%s_%d_%d" % (ev.split("--")[1], e, 10 * k + 1)
            n = int(rng.integers(0, 16)) if k else 0
            xy = rng.uniform(0, 900, (n, 2)).round(1)
            wh = rng.uniform(4, 160, (n, 2)).round(1)
            boxes = np.hstack([xy, wh]) if n else np.zeros((0, 0))
            size = wh.min(axis=1) if n else np.zeros(0)
            hard = [i + 1 for i in range(n) if rng.random() < 0.9]
            medium = [i for i in hard if size[i - 1] > 20]
            easy = [i for i in medium if size[i - 1] > 50]
            images.append((ev, name, boxes, [col(easy), col(medium), col(hard)]))
            dets = []
            for i in range(n):
                for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                    jit = rng.normal(0, 0.12, 4) * np.repeat(wh[i], 2)
                    b = np.concatenate([xy[i] + jit[:2], np.maximum(wh[i] + jit[2:], 1)])
                    dets.append(list(b.round(3)) + [round(float(rng.uniform(0.02, 1)) / 0.005) * 0.005])
            for _ in range(int(rng.integers(0, 6))):
                b = np.concatenate([rng.uniform(0, 900, 2), rng.uniform(4, 100, 2)]).round(2)
                dets.append(list(b) + [round(float(rng.uniform(0.02, 0.6)) / 0.005) * 0.005])
            dets.sort(key=lambda d: -d[4])
            if k == 4 and len(dets) > 3:
                dets[0], dets[3] = dets[3], dets[0]
            preds[(ev, name)] = (name + ".txt", pred_text(name, dets))
    return images, preds


def above_one():
    """Scores above 1 (raw logits): the normalisation starts from min 1, not the least score."""
    i32 = lambda b: np.array(b, dtype=np.int32).reshape(-1, 4)
    images = [
        ("3--Riot", "3_Riot_Riot_3_1", i32([[10, 10, 30, 30], [80, 10, 30, 30], [150, 10, 30, 30]]),
         [col([1, 2]), col([1, 2, 3]), col([1, 2, 3])]),
        ("3--Riot", "3_Riot_Riot_3_2", i32([[10, 10, 60, 60], [200, 200, 30, 30]]),
         [col([1, 2]), col([1, 2]), col([1, 2])]),
    ]
    preds = {
        ("3--Riot", "3_Riot_Riot_3_1"): ("3_Riot_Riot_3_1.txt", pred_text("3_Riot_Riot_3_1", [
            [10.0, 10.0, 30.0, 30.0, 12.0], [150.0, 10.0, 30.0, 31.0, 7.5],
            [400.0, 10.0, 30.0, 30.0, 6.0], [80.0, 12.0, 30.0, 30.0, 2.5]])),
        ("3--Riot", "3_Riot_Riot_3_2"): ("3_Riot_Riot_3_2.txt", pred_text("3_Riot_Riot_3_2", [
            [12.0, 10.0, 60.0, 58.0, 9.0], [300.0, 300.0, 20.0, 20.0, 8.0],
            # 0.004 apart: two thresholds apart when normalised from 1, one from 2.5.
            [200.0, 200.0, 30.0, 30.0, 3.05], [600.0, 600.0, 20.0, 20.0, 3.046]])),
    }
    return images, preds


def no_easy_faces():
    """A setting that counts no face: recall 0/0 = NaN throughout, so its AP is NaN."""
    images = [
        ("4--Dancing", "4_Dancing_Dancing_4_1", np.array([[10, 10, 15, 15]], dtype=np.int32),
         [col([]), col([1]), col([1])]),
    ]
    preds = {("4--Dancing", "4_Dancing_Dancing_4_1"): ("4_Dancing_Dancing_4_1.txt", pred_text(
        "4_Dancing_Dancing_4_1", [[10.0, 10.0, 15.0, 15.0, 0.9], [50.0, 50.0, 15.0, 15.0, 0.3]]))}
    return images, preds


def every(images, preds, n):
    """Every n-th image of the list sorted by (event, name), as `retinaface eval --every n`."""
    keep = sorted((im[0], im[1]) for im in images)[::n]
    return [im for im in images if (im[0], im[1]) in keep], {k: v for k, v in preds.items() if k in keep}


def run(evaluation, gt_dir, pred_dir):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        evaluation.evaluation(pred_dir, gt_dir)
    return [line.split(": ")[1] for line in out.getvalue().splitlines() if "Val AP" in line]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--evaluation", required=True)
    args = parser.parse_args()
    evaluation = load_evaluation(args.evaluation)
    scenarios = {"mixed": mixed(), "random": random_scenario(), "above_one": above_one(),
                 "no_easy_faces": no_easy_faces()}
    for name, (images, preds) in scenarios.items():
        gt_dir, pred_dir = write_scenario(os.path.join(HERE, name), images, preds)
        print(name, *run(evaluation, gt_dir, pred_dir))
    images, preds = scenarios["random"]
    with tempfile.TemporaryDirectory() as tmp:
        gt_dir, pred_dir = write_scenario(tmp, *every(images, preds, 3))
        print("random --every 3", *run(evaluation, gt_dir, pred_dir))
    # numpy's pairwise np.sum over 1000 values, as the AP sums its terms.
    a = np.array([((-1) ** i) * 0.37 / (i + 1) + 1e-3 * i for i in range(1000)])
    print("np.sum bits", hex(np.sum(a).view(np.uint64)))


if __name__ == "__main__":
    main()
