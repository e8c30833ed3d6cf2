//! The WIDER FACE evaluator: APs against the official Python evaluation's own output, the
//! MAT-file reader on scipy- and MATLAB-style files and on damaged ones, the prediction files,
//! and `retinaface eval widerface` end to end on a tiny val layout made of the test photos.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use retinaface::eval::mat::{Data, MatFile};
use retinaface::eval::widerface::{
    evaluate, numpy_sum, parse_prediction_file, prediction_file, Aps, GroundTruth, Predictions,
};
use retinaface::{Error, Face, Landmarks};

fn data(scenario: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/widerface")).join(scenario)
}

fn scenario_aps(scenario: &str, every: Option<usize>) -> Aps {
    let dir = data(scenario);
    let gt = GroundTruth::load(&dir.join("gt")).unwrap();
    let gt = every.map_or(gt.clone(), |n| gt.every(n));
    let preds = Predictions::load_dir(&dir.join("pred")).unwrap();
    evaluate(&gt, &preds).unwrap()
}

/// Bit-for-bit equal, NaN equal to NaN.
fn assert_same(found: f64, expected: f64, what: &str) {
    assert!(
        found.to_bits() == expected.to_bits() || (found.is_nan() && expected.is_nan()),
        "{what}: {found:?}, the official evaluation printed {expected:?}"
    );
}

fn assert_aps(aps: Aps, expected: [f64; 3], what: &str) {
    assert_same(aps.easy, expected[0], &format!("{what} easy"));
    assert_same(aps.medium, expected[1], &format!("{what} medium"));
    assert_same(aps.hard, expected[2], &format!("{what} hard"));
}

// The expected APs below are what widerface_evaluate/evaluation.py of biubug6/Pytorch_Retinaface
// (b984b4b7, numpy 2.4.6, scipy 1.17.1) printed for the scenario folders under
// tests/data/widerface/, made and evaluated by tests/data/widerface/make_reference.py (which
// documents how; its Cython box overlap is ported to Python operation for operation).

#[test]
fn hand_made_cases_match_the_official_evaluation() {
    // Ignored faces, a duplicate, an unsorted file, equal scores, twin faces, a face-less
    // image with predictions, an empty prediction file, a file named by its first line only,
    // CRLF.
    assert_aps(
        scenario_aps("mixed", None),
        [0.6000000000000001, 0.5277777777777777, 0.6666666666666667],
        "mixed",
    );
}

#[test]
fn random_cases_match_the_official_evaluation() {
    assert_aps(
        scenario_aps("random", None),
        [0.35014868543644434, 0.38775722933953866, 0.3663948033320457],
        "random",
    );
}

#[test]
fn every_third_image_matches_the_official_evaluation_of_those_images() {
    // The official evaluation run on a ground truth and prediction folder holding only every
    // third image of the sorted list.
    let aps = scenario_aps("random", Some(3));
    assert_eq!(aps.images, 9);
    assert_aps(
        aps,
        [0.37329878793293425, 0.4192534955267874, 0.37938337132377803],
        "random, every 3",
    );
}

#[test]
fn scores_above_one_are_normalised_from_one_as_the_official_evaluation_does() {
    assert_aps(
        scenario_aps("above_one", None),
        [0.7928571428571429, 0.8083333333333333, 0.8083333333333333],
        "above_one",
    );
}

#[test]
fn a_setting_without_faces_has_a_nan_ap_as_in_the_official_evaluation() {
    let aps = scenario_aps("no_easy_faces", None);
    assert_aps(aps, [f64::NAN, 1.0, 1.0], "no_easy_faces");
    assert_eq!(aps.faces, [0, 1, 1]);
}

#[test]
fn sums_in_numpys_pairwise_order() {
    // np.sum of these 1000 values (make_reference.py prints its bits); a left-to-right sum
    // differs in the last bits.
    let a: Vec<f64> = (0..1000)
        .map(|i| {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            sign * 0.37 / (i + 1) as f64 + 1e-3 * i as f64
        })
        .collect();
    assert_eq!(numpy_sum(&a).to_bits(), 0x407f3c19b895ae87);
    let sequential = a.iter().fold(0.0, |s, x| s + x);
    assert_ne!(sequential.to_bits(), 0x407f3c19b895ae87);
}

#[test]
fn scipy_written_ground_truth_reads_as_written() {
    let gt = GroundTruth::load(&data("mixed/gt")).unwrap();
    assert_eq!(gt.images.len(), 5);
    let first = &gt.images[0];
    assert_eq!(
        (first.event.as_str(), first.name.as_str()),
        ("0--Parade", "0_Parade_marchingband_1_5")
    );
    // int32 boxes, column-major N x 4 in the file.
    assert_eq!(first.boxes[1], [100.0, 20.0, 30.0, 30.0]);
    assert_eq!(first.keep, [vec![1], vec![1, 2], vec![1, 2, 3]]);
    // An empty (0 x 0) box array and empty index lists.
    assert!(gt.images[1].boxes.is_empty());
    assert!(gt.images[1].keep.iter().all(|k| k.is_empty()));
    // float64 boxes, uint16 indices.
    assert_eq!(gt.images[2].boxes[1], [50.0, 50.0, 25.5, 30.25]);
    assert_eq!(gt.images[2].keep[2], vec![1, 2]);
    assert_eq!(gt.face_counts(), [5, 9, 13]);
}

#[test]
fn every_takes_each_nth_image_of_the_sorted_list() {
    let gt = GroundTruth::load(&data("mixed/gt")).unwrap();
    let names: Vec<String> = gt.every(2).images.into_iter().map(|i| i.name).collect();
    // Sorted: 0_Parade_Parade_0_7 < 0_Parade_marchingband_1_5 (uppercase first), then the
    // Handshaking pair, then Demonstration.
    assert_eq!(
        names,
        [
            "0_Parade_Parade_0_7",
            "1_Handshaking_a_2",
            "2_Demonstration_c_9"
        ]
    );
    assert_eq!(gt.every(1).images.len(), 5);
}

// A MAT-file writer for the tests: the official files' own element types (class double face
// indices stored as miUINT8, int32 boxes, UTF-8 names, small elements for up to 4 bytes), in
// either byte order, compressed or not.

enum W {
    /// Class, storage type, sizes and the stored bytes' values.
    Num(u8, u32, Vec<u32>, Vec<f64>),
    Str(String),
    Cell(Vec<W>),
}

struct Writer {
    big: bool,
}

impl Writer {
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn element(&self, ty: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if data.len() <= 4 && ty != 14 {
            out.extend(self.u32(((data.len() as u32) << 16) | ty));
            out.extend(data);
            out.resize(8, 0);
            return out;
        }
        out.extend(self.u32(ty));
        out.extend(self.u32(data.len() as u32));
        out.extend(data);
        out.resize(out.len().div_ceil(8) * 8, 0);
        out
    }

    fn stored(&self, ty: u32, values: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        for &v in values {
            match ty {
                2 => out.push(v as u8),
                5 => out.extend(self.u32(v as i32 as u32)),
                9 => out.extend(if self.big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }),
                _ => unreachable!("the tests store uint8, int32 or double"),
            }
        }
        out
    }

    fn matrix(&self, name: &str, w: &W) -> Vec<u8> {
        let (class, dims, content) = match w {
            W::Num(class, ty, dims, values) => (
                *class,
                dims.clone(),
                self.element(*ty, &self.stored(*ty, values)),
            ),
            W::Str(s) => (
                4,
                vec![1, s.chars().count() as u32],
                self.element(16, s.as_bytes()),
            ),
            W::Cell(cells) => (
                1,
                vec![cells.len() as u32, 1],
                cells.iter().flat_map(|c| self.matrix("", c)).collect(),
            ),
        };
        let mut body = self.element(6, &[self.u32(class as u32), [0; 4]].concat());
        body.extend(self.element(
            5,
            &dims.iter().flat_map(|d| self.u32(*d)).collect::<Vec<_>>(),
        ));
        body.extend(self.element(1, name.as_bytes()));
        body.extend(content);
        let mut out = self.u32(14).to_vec();
        out.extend(self.u32(body.len() as u32));
        out.extend(body);
        out
    }

    fn file(&self, vars: &[(&str, W)], compress: bool) -> Vec<u8> {
        let mut out = b"MATLAB 5.0 MAT-file, written by tests/eval_widerface.rs".to_vec();
        out.resize(116, b' ');
        out.extend([0u8; 8]);
        out.extend(if self.big { [1, 0] } else { [0, 1] });
        out.extend(if self.big { b"MI" } else { b"IM" });
        for (name, w) in vars {
            let m = self.matrix(name, w);
            if compress {
                use std::io::Write;
                let mut z =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(&m).unwrap();
                let z = z.finish().unwrap();
                out.extend(self.u32(15));
                out.extend(self.u32(z.len() as u32));
                out.extend(z);
            } else {
                out.extend(m);
            }
        }
        out
    }
}

/// One image: name, boxes `x y w h`, and the 1-based face indices of easy, medium, hard.
type GtImageSpec<'a> = (&'a str, Vec<[f64; 4]>, [Vec<usize>; 3]);

/// One event's ground truth, as the official files lay it out.
struct GtEvent<'a> {
    name: &'a str,
    images: Vec<GtImageSpec<'a>>,
}

/// Writes the four ground truth files of `events` into `dir`.
fn write_gt(dir: &Path, events: &[GtEvent], big: bool, compress: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let w = Writer { big };
    let boxes = |b: &Vec<[f64; 4]>| {
        // Column-major N x 4.
        let values = (0..4).flat_map(|c| b.iter().map(move |r| r[c])).collect();
        W::Num(12, 5, vec![b.len() as u32, 4], values)
    };
    let keep = |k: &Vec<usize>| {
        // Class double, stored as uint8, as in the official files.
        let dims = if k.is_empty() {
            vec![0, 0]
        } else {
            vec![k.len() as u32, 1]
        };
        W::Num(6, 2, dims, k.iter().map(|&i| i as f64).collect())
    };
    let face = w.file(
        &[
            (
                "event_list",
                W::Cell(events.iter().map(|e| W::Str(e.name.into())).collect()),
            ),
            (
                "file_list",
                W::Cell(
                    events
                        .iter()
                        .map(|e| W::Cell(e.images.iter().map(|i| W::Str(i.0.into())).collect()))
                        .collect(),
                ),
            ),
            (
                "face_bbx_list",
                W::Cell(
                    events
                        .iter()
                        .map(|e| W::Cell(e.images.iter().map(|i| boxes(&i.1)).collect()))
                        .collect(),
                ),
            ),
        ],
        compress,
    );
    std::fs::write(dir.join("wider_face_val.mat"), face).unwrap();
    for (s, file) in [
        "wider_easy_val.mat",
        "wider_medium_val.mat",
        "wider_hard_val.mat",
    ]
    .iter()
    .enumerate()
    {
        let gt_list = W::Cell(
            events
                .iter()
                .map(|e| W::Cell(e.images.iter().map(|i| keep(&i.2[s])).collect()))
                .collect(),
        );
        std::fs::write(dir.join(file), w.file(&[("gt_list", gt_list)], compress)).unwrap();
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "retinaface-eval-widerface-{}-{what}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_events() -> Vec<GtEvent<'static>> {
    vec![
        GtEvent {
            name: "0--Parade",
            images: vec![
                (
                    "0_Parade_marchingband_1_465",
                    vec![
                        [345.0, 211.0, 4.0, 4.0],
                        [331.0, 126.0, 3.0, 3.0],
                        [10.0, 20.0, 300.0, 256.0],
                    ],
                    [vec![3], vec![3], vec![1, 2, 3]],
                ),
                ("0_Parade_Parade_0_7", vec![], [vec![], vec![], vec![]]),
            ],
        },
        GtEvent {
            name: "61--Street_Battle",
            images: vec![(
                "61_Street_Battle_streetfight_61_9",
                vec![[1.0, 2.0, 3.0, 4.0]],
                [vec![], vec![1], vec![1]],
            )],
        },
    ]
}

#[test]
fn matlab_style_files_read_in_both_byte_orders_compressed_or_not() {
    let mut seen = Vec::new();
    for big in [false, true] {
        for compress in [false, true] {
            let dir = temp_dir(&format!("mat-{big}-{compress}"));
            write_gt(&dir, &small_events(), big, compress);
            let gt = GroundTruth::load(&dir).unwrap();
            assert_eq!(gt.images.len(), 3);
            assert_eq!(gt.images[0].boxes[2], [10.0, 20.0, 300.0, 256.0]);
            assert_eq!(gt.images[0].keep[2], vec![1, 2, 3]);
            assert_eq!(gt.images[2].event, "61--Street_Battle");
            seen.push(gt);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn mat_reader_reports_damage_without_panicking() {
    let dir = temp_dir("damage");
    write_gt(&dir, &small_events(), false, false);
    let plain = std::fs::read(dir.join("wider_face_val.mat")).unwrap();
    write_gt(&dir, &small_events(), false, true);
    let packed = std::fs::read(dir.join("wider_face_val.mat")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(MatFile::parse(&plain).is_ok() && MatFile::parse(&packed).is_ok());
    for bytes in [&plain, &packed] {
        // Every truncation past the header is an error (never a panic, never a partial
        // success that loses a variable silently... unless it ends on a variable boundary).
        for len in 0..bytes.len() {
            if let Ok(f) = MatFile::parse(&bytes[..len]) {
                assert!(
                    f.variables.len() < 3,
                    "a truncated file parsed whole at {len}"
                );
            }
        }
        // Every single-byte change: an error or some parse, never a panic.
        for i in 0..bytes.len() {
            for v in [0x00, 0xff, 0x80, 0x07] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = MatFile::parse(&b);
            }
        }
    }
    // Sizes that claim far more than the file holds do not allocate for the claim.
    let mut huge = plain.clone();
    // The first variable's dims element: the cell array's row count (after its 8-byte tag,
    // 16 bytes of flags and 8 of the dims tag).
    let dims_at = 128 + 8 + 16 + 8;
    huge[dims_at..dims_at + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let e = MatFile::parse(&huge).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");

    let e = MatFile::parse(b"not a mat file").unwrap_err().to_string();
    assert!(e.contains("shorter than the 128-byte"), "{e}");
    let mut v73 = plain[..128].to_vec();
    v73[124..126].copy_from_slice(&[0, 2]);
    let e = MatFile::parse(&v73).unwrap_err().to_string();
    assert!(e.contains("v7.3") && e.contains("-v7"), "{e}");
}

#[test]
fn a_compressed_variable_declaring_too_much_is_refused() {
    // A zlib stream whose inner tag declares 1 GiB: refused before inflating past the tag.
    use std::io::Write;
    let mut inner = 14u32.to_le_bytes().to_vec();
    inner.extend((1u32 << 30).to_le_bytes());
    inner.extend([0u8; 64]);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&inner).unwrap();
    let z = z.finish().unwrap();
    let mut file = vec![b' '; 116];
    file.extend([0u8; 8]);
    file.extend([0, 1]);
    file.extend(b"IM");
    file.extend(15u32.to_le_bytes());
    file.extend((z.len() as u32).to_le_bytes());
    file.extend(z);
    let e = MatFile::parse(&file).unwrap_err().to_string();
    assert!(e.contains("limit"), "{e}");
}

#[test]
fn mat_arrays_keep_their_shapes_and_characters() {
    let w = Writer { big: false };
    let bytes = w.file(
        &[
            ("name", W::Str("Straße 5".into())),
            (
                "m",
                W::Num(6, 9, vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.5, -6.0]),
            ),
        ],
        true,
    );
    let f = MatFile::parse(&bytes).unwrap();
    assert_eq!(f.get("name").unwrap().as_str().as_deref(), Some("Straße 5"));
    let m = f.get("m").unwrap();
    assert_eq!(m.dims, [2, 3]);
    assert_eq!(m.data, Data::Numeric(vec![1.0, 2.0, 3.0, 4.0, 5.5, -6.0]));
    assert!(f.get("absent").is_none());
}

#[test]
fn ground_truth_with_wrong_structure_names_the_problem() {
    let dir = temp_dir("structure");
    let mut events = small_events();
    // Face index 4 of an image with 3 faces.
    events[0].images[0].2[0] = vec![4];
    write_gt(&dir, &events, false, true);
    let e = GroundTruth::load(&dir).unwrap_err();
    assert!(matches!(e, Error::WiderFace { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("wider_easy_val.mat")
            && msg.contains("0--Parade/0_Parade_marchingband_1_465")
            && msg.contains("face index 4"),
        "{msg}"
    );
    std::fs::remove_file(dir.join("wider_hard_val.mat")).unwrap();
    let e = GroundTruth::load(&dir).unwrap_err().to_string();
    assert!(e.contains("wider_hard_val.mat"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_face_index_out_of_range_in_code_built_ground_truth_is_an_error() {
    let mut gt = GroundTruth::load(&data("mixed/gt")).unwrap();
    let preds = Predictions::load_dir(&data("mixed/pred")).unwrap();
    gt.images[0].keep[1].push(0);
    let e = evaluate(&gt, &preds).unwrap_err().to_string();
    assert!(e.contains("face index 0 of the medium setting"), "{e}");
    gt.images[0].keep[1].pop();
    gt.images[0].keep[2].push(5);
    let e = evaluate(&gt, &preds).unwrap_err().to_string();
    assert!(e.contains("face index 5 of the hard setting"), "{e}");
}

#[test]
fn prediction_files_parse_as_the_official_reader_does() {
    let (name, dets) = parse_prediction_file(
        "0--Parade/0_Parade_marchingband_1_465.jpg\n3\n1 2 3 4 0.5 \n\n 9 9 9 9 9\n5.5 6 7 8 1e-1 extra\n",
    )
    .unwrap();
    // The last path component; the `.jpg` goes at lookup time.
    assert_eq!(name, "0_Parade_marchingband_1_465.jpg");
    // Empty lines and lines starting with a space are skipped; fields past five ignored.
    assert_eq!(
        dets,
        vec![[1.0, 2.0, 3.0, 4.0, 0.5], [5.5, 6.0, 7.0, 8.0, 0.1]]
    );
    for (text, needle) in [
        ("", "empty file"),
        ("a\n1\n1 2 3 4\n", "expected `x y w h score`"),
        ("a\n1\n1 2 3 x 0.5\n", "`x` is not a number"),
        ("a\n1\n1 2 3 4 nan\n", "not a finite number"),
    ] {
        let e = parse_prediction_file(text).unwrap_err();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn written_prediction_files_carry_the_unrounded_box() {
    let face = Face {
        score: 0.987_654_3,
        facial_area: [10.25, 20.5, 110.75, 140.125],
        landmarks: Landmarks {
            right_eye: [40.0, 60.0],
            left_eye: [80.0, 60.0],
            nose: [60.0, 80.0],
            mouth_right: [45.0, 100.0],
            mouth_left: [75.0, 100.0],
        },
    };
    let text = prediction_file("0_Parade_marchingband_1_465", &[face]);
    assert_eq!(
        text,
        "0_Parade_marchingband_1_465\n1\n10.25 20.5 100.5 119.625 0.9876543\n"
    );
    let (name, dets) = parse_prediction_file(&text).unwrap();
    assert_eq!(name, "0_Parade_marchingband_1_465");
    assert_eq!(dets, vec![[10.25, 20.5, 100.5, 119.625, 0.9876543]]);
}

#[test]
fn missing_and_duplicate_prediction_files_are_errors_that_say_which() {
    let gt = GroundTruth::load(&data("mixed/gt")).unwrap();
    let mut preds = Predictions::load_dir(&data("mixed/pred")).unwrap();
    assert_eq!(preds.len(), 5);
    // Without the face-less image's file.
    let mut partial = Predictions::new();
    for img in &gt.images[..4] {
        partial.insert(
            &img.event,
            &img.name,
            preds.get(&img.event, &img.name).unwrap().to_vec(),
        );
    }
    let e = evaluate(&gt, &partial).unwrap_err().to_string();
    assert!(e.contains("2_Demonstration_c_9"), "{e}");
    // Keyed with `.jpg` stripped both ways.
    preds.insert("2--Demonstration", "2_Demonstration_c_9.jpg", vec![]);
    assert_eq!(
        preds.get("2--Demonstration", "2_Demonstration_c_9"),
        Some(&[][..])
    );

    let dir = temp_dir("duplicate");
    std::fs::create_dir_all(dir.join("0--Parade")).unwrap();
    std::fs::write(dir.join("0--Parade/a.txt"), "x_1\n0\n").unwrap();
    std::fs::write(dir.join("0--Parade/b.txt"), "x_1.jpg\n0\n").unwrap();
    let e = Predictions::load_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("same image `x_1"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retinaface"));
    c.env("RETINAFACE_WEIGHTS", common::weights_path());
    c
}

/// The three APs of the official script's report.
fn printed_aps(stdout: &[u8]) -> [f64; 3] {
    let text = String::from_utf8_lossy(stdout);
    let aps: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split_once("Val AP: "))
        .map(|(_, v)| v.parse().unwrap())
        .collect();
    assert_eq!(aps.len(), 3, "{text}");
    [aps[0], aps[1], aps[2]]
}

#[test]
fn cli_evaluates_a_prediction_folder_without_the_detector() {
    let dir = data("mixed");
    let out = cli()
        .args(["eval", "widerface", "--predictions"])
        .arg(dir.join("pred"))
        .arg("--gt")
        .arg(dir.join("gt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The official script's report, its numbers to the last digit.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "==================== Results ====================\n\
         Easy   Val AP: 0.6000000000000001\n\
         Medium Val AP: 0.5277777777777777\n\
         Hard   Val AP: 0.6666666666666667\n\
         =================================================\n"
    );
}

#[test]
fn cli_refuses_contradictory_or_missing_sources() {
    let dir = data("mixed");
    for args in [
        vec!["--gt", "x"],
        vec!["--gt", "x", "--predictions", "p", "--threshold", "0.5"],
        vec!["--gt", "x", "--predictions", "p", "--every", "0"],
    ] {
        let out = cli()
            .args(["eval", "widerface"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // A wrong --images folder is found before the detector is set up.
    let out = cli()
        .args(["eval", "widerface", "--images"])
        .arg(dir.join("pred"))
        .arg("--gt")
        .arg(dir.join("gt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0_Parade_Parade_0_7.jpg not found") && err.contains("WIDER_val/images"),
        "{err}"
    );
}

/// The golden detections of a test photo as ground truth: `x y w h` rounded to whole pixels,
/// as the official files hold them.
fn golden_boxes(stem: &str) -> Vec<[f64; 4]> {
    let text =
        std::fs::read_to_string(common::testdata().join(format!("golden/{stem}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b: Vec<f64> = d["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            [
                b[0].round(),
                b[1].round(),
                (b[2] - b[0]).round(),
                (b[3] - b[1]).round(),
            ]
        })
        .collect()
}

#[test]
fn cli_evaluates_the_detector_on_a_tiny_val_layout_and_saves_its_predictions() {
    let root = temp_dir("cli");
    let photos = [
        ("0--Parade", "0_Parade_marchingband_1_1", "small_group"),
        ("0--Parade", "0_Parade_Parade_0_2", "no_face"),
        ("12--Group", "12_Group_Group_12_3", "portrait_frontal"),
    ];
    for (event, name, stem) in photos {
        std::fs::create_dir_all(root.join("images").join(event)).unwrap();
        std::fs::copy(
            common::testdata().join(format!("images/{stem}.jpg")),
            root.join("images").join(event).join(format!("{name}.jpg")),
        )
        .unwrap();
    }
    let group = golden_boxes("small_group");
    let portrait = golden_boxes("portrait_frontal");
    assert_eq!((group.len(), portrait.len()), (3, 1));
    let all = |n: usize| (1..=n).collect::<Vec<_>>();
    let events = [
        GtEvent {
            name: "0--Parade",
            images: vec![
                (photos[0].1, group.clone(), [vec![1], all(2), all(3)]),
                (photos[1].1, vec![], [vec![], vec![], vec![]]),
            ],
        },
        GtEvent {
            name: "12--Group",
            images: vec![(photos[2].1, portrait.clone(), [all(1), all(1), all(1)])],
        },
    ];
    write_gt(&root.join("gt"), &events, false, true);

    let out = cli()
        .args(["eval", "widerface", "--images"])
        .arg(root.join("images"))
        .arg("--gt")
        .arg(root.join("gt"))
        .arg("--save-predictions")
        .arg(root.join("pred"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("3 images; faces counted: easy 2, medium 3, hard 4"),
        "{stderr}"
    );
    // Every face found, and found before any false detection: AP 1 in every setting.
    let aps = printed_aps(&out.stdout);
    assert_eq!(
        aps,
        [1.0, 1.0, 1.0],
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // One standard file per image, with the unrounded boxes of the detector.
    for (event, name, _) in photos {
        let text =
            std::fs::read_to_string(root.join("pred").join(event).join(format!("{name}.txt")))
                .unwrap();
        let (first, dets) = parse_prediction_file(&text).unwrap();
        assert_eq!(first, name);
        assert_eq!(text.lines().nth(1).unwrap(), dets.len().to_string());
        assert!(
            dets.windows(2).all(|w| w[0][4] >= w[1][4]),
            "best first: {text}"
        );
    }
    let text =
        std::fs::read_to_string(root.join("pred/12--Group/12_Group_Group_12_3.txt")).unwrap();
    let (_, dets) = parse_prediction_file(&text).unwrap();
    let best = dets[0];
    assert!(best[4] > 0.99 && best[0].fract() != 0.0, "{best:?}");
    // The golden box (x1 y1 x2 y2 = 372.96 80.32 607.13 422.18) within a pixel.
    for (found, golden) in best[..4].iter().zip([372.96, 80.32, 234.17, 341.86]) {
        assert!((found - golden).abs() < 1.0, "{best:?}");
    }
    // The saved files evaluate to the very same report.
    let again = cli()
        .args(["eval", "widerface", "--predictions"])
        .arg(root.join("pred"))
        .arg("--gt")
        .arg(root.join("gt"))
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(again.stdout, out.stdout);
    std::fs::remove_dir_all(&root).unwrap();
}
