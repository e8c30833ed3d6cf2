//! `retinaface eval widerface`: the WIDER FACE val APs (easy, medium, hard), computed as the
//! official Python evaluation computes them, from the detector run on the val images or from
//! a folder of prediction files (this detector's or any other's).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Subcommand};
use retinaface::eval::widerface::{
    evaluate, parse_prediction_file, prediction_file, GroundTruth, GtImage, Predictions,
};
use retinaface::{DetectOptions, Detector, Face, Resize};

use crate::console::{outln, report};
use crate::fatal::Fatal;

/// `retinaface eval widerface --help`'s closing text.
pub const WIDERFACE_AFTER_HELP: &str = "\
Examples:
  retinaface eval widerface --images WIDER_val/images --gt ground_truth
  retinaface eval widerface --images WIDER_val/images --gt ground_truth --every 10
  retinaface eval widerface --images WIDER_val/images --gt ground_truth --save-predictions preds
  retinaface eval widerface --predictions preds --gt ground_truth

--images is the folder of event folders (0--Parade/0_Parade_marchingband_1_465.jpg, ...) from
WIDER_val.zip. --gt holds wider_face_val.mat and wider_{easy,medium,hard}_val.mat, as shipped in
the official eval_tools.zip (ground_truth/) and in Pytorch_Retinaface's
widerface_evaluate/ground_truth.

The defaults are those of Pytorch_Retinaface's test_widerface.py, which made the published
RetinaFace numbers: each image at its original size, score threshold 0.02, NMS 0.4.
--save-predictions writes the standard files (EVENT/NAME.txt: name, count, `x y w h score`
lines with the unrounded boxes); the official evaluation.py reads them as they are.

Exit codes: 0 APs printed, 1 some image failed (reported; no AP printed), 2 usage or setup
error.";

#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    benchmark: Benchmark,
}

#[derive(Subcommand)]
enum Benchmark {
    /// WIDER FACE val: AP on easy, medium and hard, by the official evaluation's protocol.
    #[command(after_help = WIDERFACE_AFTER_HELP)]
    Widerface(WiderfaceArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["images", "predictions"])))]
struct WiderfaceArgs {
    /// The val images: the folder holding EVENT/NAME.jpg (WIDER_val/images).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Evaluate these prediction files (EVENT/NAME.txt) instead of running the detector.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["save_predictions", "threshold", "nms_threshold", "resize", "weights"]
    )]
    predictions: Option<PathBuf>,
    /// The ground truth folder: wider_face_val.mat and wider_{easy,medium,hard}_val.mat.
    #[arg(long, value_name = "DIR")]
    gt: PathBuf,
    /// Evaluate every Nth image of the list sorted by event and name; the APs are those of
    /// these images alone (a quick estimate).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    every: u32,
    /// Also write the predictions to DIR/EVENT/NAME.txt (folders created as needed).
    #[arg(long, value_name = "DIR")]
    save_predictions: Option<PathBuf>,
    /// Keep faces scoring above this (test_widerface.py's 0.02: the whole PR curve).
    #[arg(long, default_value_t = 0.02)]
    threshold: f32,
    /// IoU above which overlapping boxes are suppressed.
    #[arg(long = "nms", default_value_t = 0.4)]
    nms_threshold: f32,
    /// `original` (the published protocol), `default` (retina-face's short side 1024), or
    /// `max:N`.
    #[arg(long, default_value = "original")]
    resize: String,
    /// The weights file; else RETINAFACE_WEIGHTS, ./weights, the user cache.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Whose file to look for in ./weights and the cache: mnet025, resnet50 or retinaface.
    #[arg(long, default_value = "mnet025")]
    model: retinaface::Model,
}

pub fn run(args: EvalArgs) -> Result<bool, Fatal> {
    match args.benchmark {
        Benchmark::Widerface(a) => widerface(a),
    }
}

fn widerface(a: WiderfaceArgs) -> Result<bool, Fatal> {
    // Options first: a bad one is reported before the ground truth and the GPU are set up.
    let options = DetectOptions {
        threshold: a.threshold,
        nms_threshold: a.nms_threshold,
        resize: a.resize.parse::<Resize>()?,
        allow_upscaling: true,
    };
    options.validate()?;
    let gt = GroundTruth::load(&a.gt)?.every(a.every as usize);
    let preds = match (&a.predictions, &a.images) {
        (Some(dir), _) => Predictions::load_dir(dir)?,
        (None, Some(images)) => match detect_all(&a, images, &gt, options)? {
            Some(p) => p,
            None => return Ok(false),
        },
        (None, None) => return Err(Fatal("give --images DIR or --predictions DIR".into())),
    };
    let aps = evaluate(&gt, &preds)?;
    let [easy, medium, hard] = aps.faces;
    eprintln!(
        "{} images{}; faces counted: easy {easy}, medium {medium}, hard {hard}",
        aps.images,
        if a.every > 1 {
            format!(" (one in {} of the list sorted by event and name)", a.every)
        } else {
            String::new()
        }
    );
    // The official script's report, so what parses its output parses this.
    outln!("==================== Results ====================");
    outln!("Easy   Val AP: {}", aps.easy);
    outln!("Medium Val AP: {}", aps.medium);
    outln!("Hard   Val AP: {}", aps.hard);
    outln!("=================================================");
    Ok(true)
}

fn image_path(images: &Path, img: &GtImage) -> PathBuf {
    images.join(&img.event).join(format!("{}.jpg", img.name))
}

/// Runs the detector on every image of `gt`; `None` when some image failed (each reported).
fn detect_all(
    a: &WiderfaceArgs,
    images: &Path,
    gt: &GroundTruth,
    options: DetectOptions,
) -> Result<Option<Predictions>, Fatal> {
    // A wrong folder would fail every image, slowly: check one before the GPU setup.
    if let Some(first) = gt.images.first() {
        let p = image_path(images, first);
        if !p.is_file() {
            return Err(Fatal(format!(
                "{} not found: --images must be the folder of event folders (WIDER_val/images), \
                 holding EVENT/NAME.jpg for the images of --gt",
                p.display()
            )));
        }
    }
    let detector = Detector::for_model(a.model, a.weights.as_deref())?.with_options(options)?;
    let bar = indicatif::ProgressBar::new(gt.images.len() as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    let mut sink = Sink {
        save: a.save_predictions.as_deref(),
        preds: Predictions::new(),
        failed: 0,
    };
    // Up to 3 images on the GPU at once: decoding the next overlaps the GPU's work.
    let mut stream = detector.stream(&options, 3);
    let mut in_flight: VecDeque<&GtImage> = VecDeque::new();
    for img in &gt.images {
        let path = image_path(images, img);
        let pushed = retinaface::image_io::load_path(&path).and_then(|pixels| stream.push(&pixels));
        match pushed {
            Err(e) => {
                bar.suspend(|| report(&path, e));
                sink.failed += 1;
                bar.inc(1);
            }
            Ok(done) => {
                in_flight.push_back(img);
                if let Some(faces) = done {
                    if let Some(done_img) = in_flight.pop_front() {
                        bar.suspend(|| sink.take(images, done_img, faces))?;
                        bar.inc(1);
                    }
                }
            }
        }
    }
    while let Some(faces) = stream.pop() {
        if let Some(done_img) = in_flight.pop_front() {
            bar.suspend(|| sink.take(images, done_img, faces))?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if sink.failed > 0 {
        eprintln!(
            "retinaface: {} of {} images failed; no AP printed, as the APs need every image{}",
            sink.failed,
            gt.images.len(),
            if a.save_predictions.is_some() {
                " (the others' predictions are saved)"
            } else {
                ""
            }
        );
        return Ok(None);
    }
    Ok(Some(sink.preds))
}

/// Where each image's detections go.
struct Sink<'a> {
    save: Option<&'a Path>,
    preds: Predictions,
    failed: usize,
}

impl Sink<'_> {
    fn take(
        &mut self,
        images: &Path,
        img: &GtImage,
        faces: retinaface::Result<Vec<Face>>,
    ) -> Result<(), Fatal> {
        let faces = match faces {
            Ok(f) => f,
            Err(e) => {
                report(&image_path(images, img), e);
                self.failed += 1;
                return Ok(());
            }
        };
        // Evaluated through the text of the prediction file, so the APs printed now and
        // those of `--predictions` on the saved files are the same to the bit.
        let text = prediction_file(&img.name, &faces);
        if let Some(dir) = self.save {
            let file = dir.join(&img.event).join(format!("{}.txt", img.name));
            std::fs::create_dir_all(dir.join(&img.event)).map_err(|e| {
                Fatal(format!(
                    "cannot create {}: {e}",
                    dir.join(&img.event).display()
                ))
            })?;
            retinaface::fs_atomic::write_atomic(&file, text.as_bytes())?;
        }
        let (_, dets) = parse_prediction_file(&text)
            .map_err(|e| Fatal(format!("prediction file of {}: {e}", img.name)))?;
        self.preds.insert(&img.event, &img.name, dets);
        Ok(())
    }
}
