//! The WIDER FACE validation protocol, computed as the Python `evaluation.py` shipped with
//! WiderFace-Evaluation (wondervictor) and Pytorch_Retinaface's `widerface_evaluate` computes
//! it, down to its arithmetic, so the three APs agree with it to the last bit:
//!
//! - scores are normalised over all evaluated predictions as `(s - min) / (max - min)`, where
//!   `max` starts at 0 and `min` at 1 (so a detector whose scores all exceed 1 is normalised
//!   from 1, not from its smallest score);
//! - boxes are `x y w h`; corners are `x + w`, `y + h`, and the overlap adds 1 to every width
//!   and height (the Fast R-CNN `bbox_overlaps` convention);
//! - each prediction, in file order, takes the ground truth box it overlaps most (the first of
//!   equals); at IoU >= 0.5 it recalls that face if the setting counts it, and is dropped from
//!   the proposals if not; a face already recalled is not recalled twice, and a second
//!   prediction on it stays a proposal (a false positive);
//! - 1000 thresholds `1 - (t + 1) / 1000`; at each, an image contributes the predictions up to
//!   the *last* one scoring at or above it, in file order (so files are expected best first);
//! - images without ground truth faces or without predictions add nothing but their faces'
//!   count (false positives on face-less images are not counted);
//! - the settings' `gt_list` say which faces count (easy within medium within hard); the
//!   others are ignored;
//! - AP is VOC's area under the precision envelope, summed as numpy sums (pairwise), and NaN
//!   precisions (thresholds with no proposals) propagate through the envelope as
//!   `np.maximum` makes them.
//!
//! One difference, on purpose: the Python normalises scores over every file in the
//! prediction folder; here it is over the predictions of the images evaluated. The two agree
//! whenever the folder holds the predictions of the evaluated images only, as it does when
//! written by `retinaface eval widerface --save-predictions` or Pytorch_Retinaface's
//! `test_widerface.py`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::mat::{Array, MatFile};
use crate::error::{Error, Result};
use crate::face::Face;

/// Number of score thresholds of the precision-recall curve.
pub const THRESH_NUM: usize = 1000;
/// Overlap at or above which a prediction matches a face.
pub const IOU_THRESHOLD: f64 = 0.5;

/// The three difficulty settings, in the order the official tools report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Easy,
    Medium,
    Hard,
}

impl Setting {
    pub const ALL: [Setting; 3] = [Setting::Easy, Setting::Medium, Setting::Hard];

    /// The ground truth file listing the faces this setting counts.
    pub fn file_name(self) -> &'static str {
        match self {
            Setting::Easy => "wider_easy_val.mat",
            Setting::Medium => "wider_medium_val.mat",
            Setting::Hard => "wider_hard_val.mat",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Setting::Easy => "easy",
            Setting::Medium => "medium",
            Setting::Hard => "hard",
        }
    }
}

/// The file holding the events, image names and face boxes.
pub const FACE_FILE: &str = "wider_face_val.mat";

/// One validation image's ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct GtImage {
    /// The event folder, e.g. `0--Parade`.
    pub event: String,
    /// The image name without `.jpg`, e.g. `0_Parade_marchingband_1_465`.
    pub name: String,
    /// Face boxes as `x, y, w, h` in pixels.
    pub boxes: Vec<[f64; 4]>,
    /// Per setting (easy, medium, hard): the 1-based indices into `boxes` of the faces the
    /// setting counts (`gt_list`); a listed index counts once per listing, as in the Python.
    pub keep: [Vec<usize>; 3],
}

/// The ground truth of (part of) the validation split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroundTruth {
    pub images: Vec<GtImage>,
}

impl GroundTruth {
    /// Reads `wider_face_val.mat` and the three settings' files from the official
    /// `ground_truth` folder.
    pub fn load(dir: &Path) -> Result<GroundTruth> {
        let face = MatFile::read(&dir.join(FACE_FILE))?;
        let mut settings = Vec::new();
        for s in Setting::ALL {
            settings.push((
                dir.join(s.file_name()),
                MatFile::read(&dir.join(s.file_name()))?,
            ));
        }
        Self::from_mat(&dir.join(FACE_FILE), &face, &settings)
    }

    /// Builds the ground truth from parsed files: `face` holds `event_list`, `file_list` and
    /// `face_bbx_list`; `settings` (easy, medium, hard, each with its path for messages) hold
    /// `gt_list`.
    pub fn from_mat(
        face_path: &Path,
        face: &MatFile,
        settings: &[(PathBuf, MatFile)],
    ) -> Result<GroundTruth> {
        let bad = |path: &Path, reason: String| Error::WiderFace {
            path: path.to_path_buf(),
            reason: format!("{reason}; is this the official WIDER FACE val ground truth?"),
        };
        if settings.len() != 3 {
            return Err(bad(
                face_path,
                format!(
                    "{} settings given, expected easy, medium and hard",
                    settings.len()
                ),
            ));
        }
        let cells = |file: &MatFile, path: &Path, var: &str| -> Result<Vec<Array>> {
            file.get(var)
                .ok_or_else(|| bad(path, format!("no variable `{var}`")))?
                .as_cells()
                .map(|c| c.to_vec())
                .ok_or_else(|| bad(path, format!("`{var}` is not a cell array")))
        };
        let events = cells(face, face_path, "event_list")?;
        let files = cells(face, face_path, "file_list")?;
        let boxes = cells(face, face_path, "face_bbx_list")?;
        let mut keeps = Vec::new();
        for (path, file) in settings {
            keeps.push((path, cells(file, path, "gt_list")?));
        }
        if files.len() != events.len() || boxes.len() != events.len() {
            return Err(bad(
                face_path,
                format!(
                    "{} events but {} file lists and {} box lists",
                    events.len(),
                    files.len(),
                    boxes.len()
                ),
            ));
        }
        for (path, k) in &keeps {
            if k.len() != events.len() {
                return Err(bad(
                    path,
                    format!(
                        "`gt_list` has {} events, expected {}",
                        k.len(),
                        events.len()
                    ),
                ));
            }
        }
        let mut images = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let event = event
                .as_str()
                .ok_or_else(|| bad(face_path, format!("event {} is not a name", i + 1)))?;
            let inner = |a: &Array, path: &Path, what: &str| -> Result<Vec<Array>> {
                a.as_cells().map(|c| c.to_vec()).ok_or_else(|| {
                    bad(path, format!("{what} of event {event} is not a cell array"))
                })
            };
            let names = inner(&files[i], face_path, "`file_list`")?;
            let event_boxes = inner(&boxes[i], face_path, "`face_bbx_list`")?;
            if event_boxes.len() != names.len() {
                return Err(bad(
                    face_path,
                    format!(
                        "event {event} has {} images but {} box lists",
                        names.len(),
                        event_boxes.len()
                    ),
                ));
            }
            let mut event_keeps = Vec::new();
            for (path, k) in &keeps {
                let k = inner(&k[i], path, "`gt_list`")?;
                if k.len() != names.len() {
                    return Err(bad(
                        path,
                        format!(
                            "event {event} has {} images in `gt_list`, expected {}",
                            k.len(),
                            names.len()
                        ),
                    ));
                }
                event_keeps.push((path, k));
            }
            for (j, name) in names.iter().enumerate() {
                let name = name.as_str().ok_or_else(|| {
                    bad(
                        face_path,
                        format!("image {} of event {event} is not a name", j + 1),
                    )
                })?;
                let b = gt_boxes(&event_boxes[j])
                    .map_err(|r| bad(face_path, format!("boxes of {event}/{name}: {r}")))?;
                let mut keep: [Vec<usize>; 3] = Default::default();
                for (s, (path, k)) in event_keeps.iter().enumerate() {
                    keep[s] = keep_indices(&k[j], b.len())
                        .map_err(|r| bad(path, format!("`gt_list` of {event}/{name}: {r}")))?;
                }
                images.push(GtImage {
                    event: event.clone(),
                    name,
                    boxes: b,
                    keep,
                });
            }
        }
        Ok(GroundTruth { images })
    }

    /// Every `n`-th image (the first, the `n+1`-th, ...) of the images sorted by event, then
    /// name: a quick estimate over part of the split.
    pub fn every(&self, n: usize) -> GroundTruth {
        let mut sorted: Vec<&GtImage> = self.images.iter().collect();
        sorted.sort_by(|a, b| (&a.event, &a.name).cmp(&(&b.event, &b.name)));
        GroundTruth {
            images: sorted.into_iter().step_by(n.max(1)).cloned().collect(),
        }
    }

    /// Faces each setting counts (easy, medium, hard).
    pub fn face_counts(&self) -> [usize; 3] {
        let mut n = [0; 3];
        for img in &self.images {
            for (s, k) in img.keep.iter().enumerate() {
                n[s] += k.len();
            }
        }
        n
    }
}

/// An image's boxes: an N x 4 array, or an empty one for no faces.
fn gt_boxes(a: &Array) -> Result<Vec<[f64; 4]>, String> {
    let v = a.as_numeric().ok_or("not a numeric array")?;
    if v.is_empty() {
        return Ok(Vec::new());
    }
    if a.dims.len() != 2 || a.cols() != 4 {
        return Err(format!("sizes {:?}, expected N x 4", a.dims));
    }
    // Column-major: column c of row r is at r + c * rows.
    let rows = a.rows();
    Ok((0..rows)
        .map(|r| [v[r], v[r + rows], v[r + 2 * rows], v[r + 3 * rows]])
        .collect())
}

/// A setting's face indices: a column of 1-based indices into the image's boxes.
fn keep_indices(a: &Array, faces: usize) -> Result<Vec<usize>, String> {
    let v = a.as_numeric().ok_or("not a numeric array")?;
    if v.is_empty() {
        return Ok(Vec::new());
    }
    if a.dims.len() != 2 || a.cols() != 1 {
        return Err(format!(
            "sizes {:?}, expected a column of face indices",
            a.dims
        ));
    }
    v.iter()
        .map(|&k| {
            if k.fract() == 0.0 && k >= 1.0 && k <= faces as f64 {
                Ok(k as usize)
            } else {
                Err(format!(
                    "face index {k} is not one of the image's {faces} faces (1..={faces})"
                ))
            }
        })
        .collect()
}

/// One prediction: `[x, y, w, h, score]`.
pub type Detection = [f64; 5];

/// Predictions per image, keyed by event and image name.
#[derive(Clone, Debug, Default)]
pub struct Predictions {
    by_image: HashMap<(String, String), Vec<Detection>>,
    /// Where they were read from, for messages.
    source: PathBuf,
}

/// The image name as the Python keys it: `name.rstrip('.jpg')` strips any run of the
/// characters `.`, `j`, `p`, `g` from the end (harmless on WIDER FACE's names, which end in a
/// digit). Applied to both sides of the lookup, so a name ending in one of them still matches.
fn image_key(name: &str) -> String {
    name.trim_end_matches(['.', 'j', 'p', 'g']).to_string()
}

impl Predictions {
    /// An empty set, to fill with [`Predictions::insert`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the detections of one image (replacing any before).
    pub fn insert(&mut self, event: &str, name: &str, detections: Vec<Detection>) {
        self.by_image
            .insert((event.to_string(), image_key(name)), detections);
    }

    pub fn get(&self, event: &str, name: &str) -> Option<&[Detection]> {
        self.by_image
            .get(&(event.to_string(), image_key(name)))
            .map(|v| v.as_slice())
    }

    pub fn len(&self) -> usize {
        self.by_image.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_image.is_empty()
    }

    /// Reads a prediction folder in the standard layout: `EVENT/*.txt`, each file naming its
    /// image on the first line (a path's last component counts), the count on the second
    /// (not used, as in the Python), then `x y w h score` lines. Files not ending in `.txt`
    /// and entries at the top that are not folders are skipped.
    pub fn load_dir(dir: &Path) -> Result<Predictions> {
        let io = |path: &Path, e: std::io::Error| Error::WiderFace {
            path: path.to_path_buf(),
            reason: format!("cannot read the prediction folder ({e})"),
        };
        let mut out = Predictions {
            by_image: HashMap::new(),
            source: dir.to_path_buf(),
        };
        let mut from: HashMap<(String, String), PathBuf> = HashMap::new();
        for event in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let event = event.map_err(|e| io(dir, e))?.path();
            if !event.is_dir() {
                continue;
            }
            let event_name = event
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for file in std::fs::read_dir(&event).map_err(|e| io(&event, e))? {
                let file = file.map_err(|e| io(&event, e))?.path();
                if file.extension().is_none_or(|e| e != "txt") || !file.is_file() {
                    continue;
                }
                let bytes = std::fs::read(&file).map_err(|e| io(&file, e))?;
                let text = String::from_utf8(bytes).map_err(|_| Error::WiderFace {
                    path: file.clone(),
                    reason: "not UTF-8 text; expected a prediction file (name line, count line, \
                             `x y w h score` lines)"
                        .into(),
                })?;
                let (name, dets) =
                    parse_prediction_file(&text).map_err(|reason| Error::WiderFace {
                        path: file.clone(),
                        reason,
                    })?;
                let key = (event_name.clone(), image_key(&name));
                if let Some(first) = from.insert(key.clone(), file.clone()) {
                    return Err(Error::WiderFace {
                        path: file,
                        reason: format!(
                            "names the same image `{name}` as {}; keep one file per image",
                            first.display()
                        ),
                    });
                }
                out.by_image.insert(key, dets);
            }
        }
        Ok(out)
    }
}

/// Parses one prediction file as the Python `read_pred_file` does: line 1 the image (its last
/// `/` component), line 2 ignored, then per line the first five space-separated numbers;
/// lines starting with a space or empty are skipped. Non-finite numbers are refused (the
/// Python would turn the whole curve into NaN).
pub fn parse_prediction_file(text: &str) -> Result<(String, Vec<Detection>), String> {
    // Python's text mode reads \r\n and \r as line ends.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = text.split('\n');
    if text.is_empty() {
        return Err("empty file; expected the image name on the first line".into());
    }
    let first = lines.next().unwrap_or_default();
    let name = first.rsplit('/').next().unwrap_or(first).to_string();
    let mut dets = Vec::new();
    for (i, line) in lines.enumerate().skip(1) {
        let tokens: Vec<&str> = line.split(' ').collect();
        if tokens[0].is_empty() {
            continue;
        }
        let line_no = i + 2;
        if tokens.len() < 5 {
            return Err(format!(
                "line {line_no} `{line}` has {} fields, expected `x y w h score`",
                tokens.len()
            ));
        }
        let mut d = [0.0; 5];
        for (k, t) in tokens[..5].iter().enumerate() {
            let v: f64 = t
                .trim()
                .parse()
                .map_err(|_| format!("line {line_no}: `{t}` is not a number"))?;
            if !v.is_finite() {
                return Err(format!("line {line_no}: `{t}` is not a finite number"));
            }
            d[k] = v;
        }
        dets.push(d);
    }
    Ok((name, dets))
}

/// The standard prediction file for one image: its name, the count, and per face
/// `x y w h score` from the detector's unrounded box (not the package's integer one), each
/// number the shortest decimal that reads back as the same f32.
pub fn prediction_file(name: &str, faces: &[Face]) -> String {
    let mut s = format!("{name}\n{}\n", faces.len());
    for f in faces {
        let [x1, y1, x2, y2] = f.facial_area;
        s.push_str(&format!("{x1} {y1} {} {} {}\n", x2 - x1, y2 - y1, f.score));
    }
    s
}

/// The three APs, with what they were computed over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aps {
    pub easy: f64,
    pub medium: f64,
    pub hard: f64,
    /// Images evaluated.
    pub images: usize,
    /// Faces each setting counts (easy, medium, hard).
    pub faces: [usize; 3],
}

impl Aps {
    pub fn get(&self, s: Setting) -> f64 {
        match s {
            Setting::Easy => self.easy,
            Setting::Medium => self.medium,
            Setting::Hard => self.hard,
        }
    }
}

/// Evaluates predictions against the ground truth's images (every image needs predictions,
/// an empty list for none).
pub fn evaluate(gt: &GroundTruth, preds: &Predictions) -> Result<Aps> {
    let mut per_image: Vec<Vec<Detection>> = Vec::with_capacity(gt.images.len());
    for img in &gt.images {
        let p = preds
            .get(&img.event, &img.name)
            .ok_or_else(|| Error::WiderFace {
                path: preds.source.join(&img.event),
                reason: format!(
                "no prediction file for image {}; every evaluated image needs one (with a count \
                 of 0 when nothing was detected)",
                img.name
            ),
            })?;
        per_image.push(p.to_vec());
    }
    norm_score(&mut per_image);
    let thresholds: Vec<f64> = (0..THRESH_NUM)
        .map(|t| 1.0 - (t + 1) as f64 / THRESH_NUM as f64)
        .collect();
    let mut aps = [0.0; 3];
    for (s, ap) in aps.iter_mut().enumerate() {
        let mut count_face = 0usize;
        let mut pr_curve = vec![[0.0f64; 2]; THRESH_NUM];
        for (img, pred) in gt.images.iter().zip(&per_image) {
            let keep = &img.keep[s];
            count_face += keep.len();
            if img.boxes.is_empty() || pred.is_empty() {
                continue;
            }
            let mut counted = vec![false; img.boxes.len()];
            for &k in keep {
                // GroundTruth::load checks this; a ground truth built in code may not.
                let slot = k
                    .checked_sub(1)
                    .and_then(|i| counted.get_mut(i))
                    .ok_or_else(|| Error::WiderFace {
                        path: PathBuf::from(&img.event).join(&img.name),
                        reason: format!(
                            "face index {k} of the {} setting is not one of the image's {} faces \
                             (1-based)",
                            Setting::ALL[s].name(),
                            img.boxes.len()
                        ),
                    })?;
                *slot = true;
            }
            let (pred_recall, proposal) = image_eval(pred, &img.boxes, &counted);
            img_pr_info(&thresholds, pred, &proposal, &pred_recall, &mut pr_curve);
        }
        let (prec, rec): (Vec<f64>, Vec<f64>) = pr_curve
            .iter()
            .map(|&[proposals, recalled]| (recalled / proposals, recalled / count_face as f64))
            .unzip();
        *ap = voc_ap(&rec, &prec);
    }
    Ok(Aps {
        easy: aps[0],
        medium: aps[1],
        hard: aps[2],
        images: gt.images.len(),
        faces: gt.face_counts(),
    })
}

/// The Python's `norm_score`, with its starting values (max 0, min 1).
fn norm_score(preds: &mut [Vec<Detection>]) {
    let mut max_score = 0.0f64;
    let mut min_score = 1.0f64;
    for p in preds.iter().filter(|p| !p.is_empty()) {
        let lo = p.iter().map(|d| d[4]).fold(f64::INFINITY, f64::min);
        let hi = p.iter().map(|d| d[4]).fold(f64::NEG_INFINITY, f64::max);
        max_score = max_score.max(hi);
        min_score = min_score.min(lo);
    }
    let diff = max_score - min_score;
    for p in preds.iter_mut() {
        for d in p.iter_mut() {
            d[4] = (d[4] - min_score) / diff;
        }
    }
}

/// The Cython `bbox_overlaps` for one predicted box against every face, both as corners.
/// Cython's `min(a, b)` is `b < a ? b : a` and `max(a, b)` is `b > a ? b : a`; the same here.
fn overlaps(b: [f64; 4], gt: &[[f64; 4]], out: &mut Vec<f64>) {
    let min = |a: f64, b: f64| if b < a { b } else { a };
    let max = |a: f64, b: f64| if b > a { b } else { a };
    out.clear();
    for q in gt {
        let box_area = (q[2] - q[0] + 1.0) * (q[3] - q[1] + 1.0);
        let mut o = 0.0;
        let iw = min(b[2], q[2]) - max(b[0], q[0]) + 1.0;
        if iw > 0.0 {
            let ih = min(b[3], q[3]) - max(b[1], q[1]) + 1.0;
            if ih > 0.0 {
                let ua = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0) + box_area - iw * ih;
                o = iw * ih / ua;
            }
        }
        out.push(o);
    }
}

/// The Python's `image_eval`: per prediction (in file order), the faces recalled so far and
/// whether it is a proposal (`false` when it matched a face the setting ignores).
fn image_eval(pred: &[Detection], gt: &[[f64; 4]], counted: &[bool]) -> (Vec<usize>, Vec<bool>) {
    let corners: Vec<[f64; 4]> = gt
        .iter()
        .map(|g| [g[0], g[1], g[2] + g[0], g[3] + g[1]])
        .collect();
    // 0: not yet recalled, 1: recalled, -1: matched but ignored.
    let mut recall = vec![0i8; gt.len()];
    let mut recalled = 0usize;
    let mut pred_recall = Vec::with_capacity(pred.len());
    let mut proposal = vec![true; pred.len()];
    let mut o = Vec::with_capacity(gt.len());
    for (h, p) in pred.iter().enumerate() {
        overlaps([p[0], p[1], p[2] + p[0], p[3] + p[1]], &corners, &mut o);
        // numpy's max/argmax: the first index of the largest value, or of the first NaN, which
        // is the maximum then and fails the threshold test.
        let best = o.iter().position(|v| v.is_nan()).unwrap_or_else(|| {
            (1..o.len()).fold(0, |best, k| if o[k] > o[best] { k } else { best })
        });
        if o[best] >= IOU_THRESHOLD {
            if !counted[best] {
                recall[best] = -1;
                proposal[h] = false;
            } else if recall[best] == 0 {
                recall[best] = 1;
                recalled += 1;
            }
        }
        pred_recall.push(recalled);
    }
    (pred_recall, proposal)
}

/// The Python's `img_pr_info`, added into `pr_curve`: at threshold t, the proposals among
/// the predictions up to the last one scoring at or above it, and the faces they recalled.
/// Computed in one pass over the predictions instead of one per threshold, with the same
/// comparisons (`score >= threshold`).
fn img_pr_info(
    thresholds: &[f64],
    pred: &[Detection],
    proposal: &[bool],
    pred_recall: &[usize],
    pr_curve: &mut [[f64; 2]],
) {
    // The thresholds decrease, so `score >= thresholds[t]` holds from some t on: the last
    // index passing threshold t is the largest index whose first passing t is <= t.
    let mut last_from = vec![None::<usize>; thresholds.len()];
    for (i, d) in pred.iter().enumerate() {
        // "Not score >= th", NaN included.
        let t0 = thresholds.partition_point(|&th| d[4].partial_cmp(&th).is_none_or(|o| o.is_lt()));
        if t0 < thresholds.len() {
            last_from[t0] = Some(i);
        }
    }
    let mut proposals_upto = Vec::with_capacity(pred.len());
    let mut n = 0usize;
    for &p in proposal {
        n += usize::from(p);
        proposals_upto.push(n);
    }
    let mut last: Option<usize> = None;
    for (t, from) in last_from.iter().enumerate() {
        last = last.max(*from);
        if let Some(r) = last {
            pr_curve[t][0] += proposals_upto[r] as f64;
            pr_curve[t][1] += pred_recall[r] as f64;
        }
    }
}

/// The Python's `voc_ap`: the area under the precision envelope where recall changes.
fn voc_ap(rec: &[f64], prec: &[f64]) -> f64 {
    let mut mrec = Vec::with_capacity(rec.len() + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(rec);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(prec.len() + 2);
    mpre.push(0.0);
    mpre.extend_from_slice(prec);
    mpre.push(0.0);
    for i in (1..mpre.len()).rev() {
        // np.maximum returns the NaN when either is NaN.
        let (a, b) = (mpre[i - 1], mpre[i]);
        mpre[i - 1] = if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.max(b)
        };
    }
    let terms: Vec<f64> = (0..mrec.len() - 1)
        .filter(|&i| mrec[i + 1] != mrec[i])
        .map(|i| (mrec[i + 1] - mrec[i]) * mpre[i + 1])
        .collect();
    // np.sum starts from the identity, 0.0, then adds the pairwise sum.
    0.0 + numpy_sum(&terms)
}

/// numpy's pairwise summation of a contiguous float64 array (`np.sum`): eight accumulators
/// over blocks of up to 128 values, halves beyond; the order of additions decides the last
/// bits, so it is reproduced exactly.
pub fn numpy_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}
