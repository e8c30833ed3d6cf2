//! `retinaface extract`: aligned face crops as PNGs, listed as JSON lines.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use image::{Rgb, RgbImage};
use retinaface::{DetectOptions, Detector, ExtractOptions, FaceCrop};
use serde_json::{json, Value};

use crate::console::{print, report};
use crate::detection_args::DetectionArgs;
use crate::fatal::Fatal;
use crate::formats::{display_name, face_json};
use crate::inputs::{check_stdin, load};
use crate::out_files::{check_png, create_dir, png_name, save_png, Stems};

/// `retinaface extract --help`'s closing text.
pub const AFTER_HELP: &str = "Examples:\n  retinaface extract photo.jpg --out crops/\n  retinaface extract --expand-face-area 20 --target-size 224x224 photo.jpg --out crops/\n  retinaface extract --arcface a.jpg b.jpg --out crops/ --strip crops/all.png\n\nFiles are named STEM_faceN.png (N from 1, by descending score). One JSON line per image\non stdout lists them.\n\nExit codes: 0 all images done, 1 some image failed, 2 usage or setup error.";

#[derive(Args)]
pub struct ExtractArgs {
    /// Image files (JPEG or PNG); `-` reads one image from stdin.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Directory for the crops (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    detection: DetectionArgs,
    /// Keep each box upright instead of rotating the eyes level (retina-face's align=False).
    #[arg(long)]
    no_align: bool,
    /// Align to the first detection's landmarks, as retina-face does, instead of finding them
    /// again on an upright view of each face (faster; a few degrees off on rolled heads).
    #[arg(long)]
    no_refine: bool,
    /// Grow each box by this percentage of its width and height, centred, clamped to the image.
    #[arg(long, alias = "expand", value_name = "PERCENT", default_value_t = 0.0)]
    expand_face_area: f32,
    /// Scale each crop to fit WxH, keep its aspect ratio, pad centred with black (e.g. 224x224).
    #[arg(long, value_name = "WxH", value_parser = parse_target_size)]
    target_size: Option<(u32, u32)>,
    /// 112x112 crops warped onto the ArcFace template by a 5-point similarity transform.
    #[arg(long, conflicts_with_all = ["no_align", "expand_face_area", "target_size"])]
    arcface: bool,
    /// Also write every crop side by side into this one PNG.
    #[arg(long, value_name = "PNG")]
    strip: Option<PathBuf>,
    /// `ours` (default): the rotation found on upright views of each face, whole face kept.
    /// `package`: retina-face 0.0.19's extract_faces, pixel for pixel (whole image rotated
    /// about its centre, box moved, sliced; crops can come out empty, which are listed with
    /// width 0 and no file).
    #[arg(long, value_enum, default_value = "ours", conflicts_with_all = ["target_size", "arcface"])]
    align: AlignMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AlignMode {
    Ours,
    Package,
}

fn parse_target_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH, e.g. 224x224")?;
    let max = retinaface::align::MAX_TARGET_SIDE;
    let n = |v: &str| v.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
    let bad = format!("each side must be a number in 1..={max}");
    Ok((n(w).ok_or(bad.clone())?, n(h).ok_or(bad)?))
}

pub fn run(args: ExtractArgs) -> Result<bool, Fatal> {
    check_stdin(&args.images)?;
    let opts = ExtractOptions {
        detect: args.detection.options()?,
        align: !args.no_align,
        refine: !args.no_refine,
        expand_face_area: args.expand_face_area,
        target_size: args.target_size,
        arcface: args.arcface,
        float: false,
    };
    opts.validate()?;
    if let Some(strip) = &args.strip {
        check_png(strip)?;
    }
    let (detector, _) = args.detection.detector()?;
    create_dir(&args.out)?;
    let mut stems = Stems::default();
    let mut all_ok = true;
    let mut strip = Vec::new();
    if args.align == AlignMode::Package {
        return extract_package(&args, &detector, &opts.detect);
    }
    for path in &args.images {
        let crops = match load(path).and_then(|img| detector.extract_faces(&img, &opts)) {
            Ok(c) => c,
            Err(e) => {
                report(path, e);
                all_ok = false;
                continue;
            }
        };
        let stem = stems.unique(path);
        let mut listed = Vec::new();
        for (i, crop) in crops.iter().enumerate() {
            let file = args.out.join(png_name(&stem, &format!("face{}", i + 1)));
            if let Err(e) = save_png(&crop.image, &file) {
                report(path, e);
                all_ok = false;
                continue;
            }
            listed.push(crop_json(i, crop, &file));
        }
        print(&format!(
            "{}\n",
            json!({ "image": display_name(path), "crops": listed })
        ))?;
        if args.strip.is_some() {
            strip.extend(crops.into_iter().map(|c| c.image));
        }
    }
    if let Some(file) = &args.strip {
        if let Err(e) = save_png(&side_by_side(&strip), file) {
            eprintln!("retinaface: {e}");
            all_ok = false;
        }
    }
    Ok(all_ok)
}

/// `extract --align package`: retina-face's own crops ([`retinaface::align_package`]).
fn extract_package(
    args: &ExtractArgs,
    detector: &Detector,
    opts: &DetectOptions,
) -> Result<bool, Fatal> {
    let mut stems = Stems::default();
    let mut all_ok = true;
    let mut strip = Vec::new();
    for path in &args.images {
        let result = load(path).and_then(|img| {
            let faces = detector.detect_with(&img, opts)?;
            let (w, h) = img.dimensions();
            let crops = retinaface::align_package::extract(
                img.as_raw(),
                w as usize,
                h as usize,
                &faces,
                args.expand_face_area.max(0.0) as u32,
                !args.no_align,
            );
            Ok((faces, crops))
        });
        let (faces, crops) = match result {
            Ok(c) => c,
            Err(e) => {
                report(path, e);
                all_ok = false;
                continue;
            }
        };
        let stem = stems.unique(path);
        let mut listed = Vec::new();
        for (i, (face, crop)) in faces.iter().zip(&crops).enumerate() {
            let mut v = face_json(face);
            let o = v.as_object_mut().expect("face_json is an object");
            o.insert("face".into(), json!(format!("face_{}", i + 1)));
            o.insert("width".into(), json!(crop.width));
            o.insert("height".into(), json!(crop.height));
            o.insert("angle".into(), json!(crop.angle));
            let image = RgbImage::from_raw(crop.width as u32, crop.height as u32, crop.rgb.clone());
            match image.filter(|_| crop.width > 0 && crop.height > 0) {
                Some(image) => {
                    let file = args.out.join(png_name(&stem, &format!("face{}", i + 1)));
                    if let Err(e) = save_png(&image, &file) {
                        report(path, e);
                        all_ok = false;
                    }
                    o.insert("file".into(), json!(display_name(&file)));
                    strip.push(image);
                }
                None => {
                    o.insert("file".into(), Value::Null);
                }
            }
            listed.push(v);
        }
        print(&format!(
            "{}\n",
            json!({ "image": display_name(path), "crops": listed })
        ))?;
    }
    if let Some(file) = &args.strip {
        if let Err(e) = save_png(&side_by_side(&strip), file) {
            eprintln!("retinaface: {e}");
            all_ok = false;
        }
    }
    Ok(all_ok)
}

fn crop_json(i: usize, crop: &FaceCrop, file: &Path) -> Value {
    let mut v = face_json(&crop.face);
    let o = v.as_object_mut().expect("face_json is an object");
    o.insert("face".into(), json!(format!("face_{}", i + 1)));
    o.insert("file".into(), json!(display_name(file)));
    o.insert("width".into(), json!(crop.image.width()));
    o.insert("height".into(), json!(crop.image.height()));
    o.insert("angle".into(), json!(crop.angle));
    v
}

/// Crops left to right, centred vertically, 4 px of white between them.
fn side_by_side(images: &[RgbImage]) -> RgbImage {
    const GAP: u32 = 4;
    let h = images.iter().map(|i| i.height()).max().unwrap_or(1);
    let w = images
        .iter()
        .map(|i| i.width() + GAP)
        .sum::<u32>()
        .max(GAP + 1)
        - GAP;
    let mut out = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let mut x = 0;
    for img in images {
        image::imageops::replace(&mut out, img, x as i64, ((h - img.height()) / 2) as i64);
        x += img.width() + GAP;
    }
    out
}
