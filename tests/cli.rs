//! The `retinaface` binary as a user runs it.

mod common;

use std::process::Command;

use common::*;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retinaface"));
    c.env("RETINAFACE_WEIGHTS", weights_path());
    c
}

fn image(name: &str) -> String {
    testdata().join("images").join(name).display().to_string()
}

#[test]
fn one_image_prints_the_retina_face_json_object() {
    let out = cli()
        .args(["detect", "--resize", "original", &image("small_group.jpg")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["face_1", "face_2", "face_3"]
    );
    let f = &v["face_1"];
    assert!(f["score"].as_f64().unwrap() > 0.99);
    let area = f["facial_area"].as_array().unwrap();
    assert_eq!(area.len(), 4);
    assert!(
        area.iter().all(|x| x.is_i64()),
        "facial_area must be integers: {area:?}"
    );
    // Golden face 1 of small_group: box [234.7, 205.3, ...]; truncated like astype(int).
    assert_eq!(area[0].as_i64(), Some(234));
    assert_eq!(area[1].as_i64(), Some(205));
    for k in ["right_eye", "left_eye", "nose", "mouth_right", "mouth_left"] {
        let p = f["landmarks"][k].as_array().unwrap();
        assert!(p.len() == 2 && p[0].is_f64(), "{k}: {p:?}");
    }
    // The subject's right eye is on the image's left.
    assert!(f["landmarks"]["right_eye"][0].as_f64() < f["landmarks"]["left_eye"][0].as_f64());
}

#[test]
fn no_face_prints_empty_object() {
    let out = cli()
        .args(["detect", &image("no_face.jpg")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}");
}

#[test]
fn several_images_print_json_lines_and_survive_a_bad_one() {
    let missing = testdata()
        .join("images/does_not_exist.jpg")
        .display()
        .to_string();
    let out = cli()
        .args([
            "detect",
            &image("small_group.jpg"),
            &missing,
            &image("portrait_frontal.jpg"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one image failed: exit 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["image"]
        .as_str()
        .unwrap()
        .ends_with("small_group.jpg"));
    assert_eq!(lines[0]["faces"].as_object().unwrap().len(), 3);
    assert!(lines[1]["image"]
        .as_str()
        .unwrap()
        .ends_with("portrait_frontal.jpg"));
    assert_eq!(lines[1]["faces"].as_object().unwrap().len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does_not_exist.jpg"), "{stderr}");
}

#[test]
fn missing_weights_exit_2_with_advice() {
    let out = cli()
        .env(
            "RETINAFACE_WEIGHTS",
            "/nonexistent/retinaface_mnet025.safetensors",
        )
        .args(["detect", &image("small_group.jpg")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("/nonexistent/retinaface_mnet025.safetensors"));
}

#[test]
fn bad_resize_is_a_usage_error() {
    let out = cli()
        .args(["detect", "--resize", "huge", &image("small_group.jpg")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max:N"));
}

/// A fresh directory for one test's output files.
fn out_dir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("retinaface-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_shows_examples_commands_and_exit_codes() {
    let out = cli().arg("--help").output().unwrap();
    ok(&out);
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Examples:",
        "Exit codes:",
        "detect",
        "extract",
        "annotate",
        "info",
        "retinaface detect -",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    let out = cli().args(["extract", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--arcface",
        "--target-size",
        "--expand-face-area",
        "--no-align",
        "--no-upscale",
        "--threshold",
    ] {
        assert!(help.contains(want), "extract --help lacks {want}");
    }
}

#[test]
fn stdin_dash_reads_the_image() {
    use std::io::Write;
    let bytes = std::fs::read(image("small_group.jpg")).unwrap();
    let mut child = cli()
        .args(["detect", "--resize", "original", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 3);
    assert_eq!(v["face_1"]["facial_area"][0].as_i64(), Some(234));
    // stdin holds one image.
    let out = cli().args(["detect", "-", "-"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn csv_output_has_a_header_and_one_row_per_face() {
    let out = cli()
        .args([
            "detect",
            "--output",
            "csv",
            "--resize",
            "original",
            &image("small_group.jpg"),
            &image("no_face.jpg"),
            &image("portrait_frontal.jpg"),
        ])
        .output()
        .unwrap();
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][0], "image");
    assert_eq!(rows[0].len(), 21);
    assert_eq!(&rows[0][17..], ["box_x1", "box_y1", "box_x2", "box_y2"]);
    // 3 + 0 + 1 faces.
    assert_eq!(rows.len(), 1 + 4, "{text}");
    assert!(rows[1][0].ends_with("small_group.jpg"));
    assert_eq!(&rows[1][1..2], ["1"]);
    assert!(rows[1][2].parse::<f32>().unwrap() > 0.99);
    assert_eq!(&rows[1][3..5], ["234", "205"]);
    assert!(rows.iter().all(|r| r.len() == 21));
    // The float box truncates to the integer one.
    assert_eq!(rows[1][17].parse::<f32>().unwrap() as i64, 234);
    assert!(rows[4][0].ends_with("portrait_frontal.jpg"));
    // Right eye x < left eye x.
    let x = |r: &Vec<&str>, i: usize| r[i].parse::<f32>().unwrap();
    assert!(x(&rows[4], 7) < x(&rows[4], 9));
}

#[test]
fn jsonl_output_is_one_line_per_image_even_for_one() {
    let out = cli()
        .args(["detect", "--output", "jsonl", &image("small_group.jpg")])
        .output()
        .unwrap();
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(v["image"].as_str().unwrap().ends_with("small_group.jpg"));
    assert_eq!(v["faces"].as_object().unwrap().len(), 3);
    // Lines carry the unrounded box beside the package's integer facial_area.
    let f = &v["faces"]["face_1"];
    let b = f["box"].as_array().unwrap();
    assert!(
        b[0].is_f64() && b[0].as_f64().unwrap() as i64 == f["facial_area"][0].as_i64().unwrap()
    );
}

#[test]
fn extract_writes_aligned_crops_and_lists_them() {
    let dir = out_dir("extract");
    let strip = dir.join("strip.png");
    let out = cli()
        .args([
            "extract",
            "--resize",
            "original",
            "--target-size",
            "96x112",
            "--out",
        ])
        .arg(&dir)
        .arg("--strip")
        .arg(&strip)
        .args([&image("small_group.jpg"), &image("tilted_head.png")])
        .output()
        .unwrap();
    ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let crops = lines[0]["crops"].as_array().unwrap();
    assert_eq!(crops.len(), 3);
    for (i, c) in crops.iter().enumerate() {
        let file = std::path::PathBuf::from(c["file"].as_str().unwrap());
        assert_eq!(file, dir.join(format!("small_group_face{}.png", i + 1)));
        assert_eq!(image::image_dimensions(&file).unwrap(), (96, 112));
        assert!(c["score"].as_f64().unwrap() > 0.9);
    }
    assert_eq!(lines[1]["crops"].as_array().unwrap().len(), 1);
    let tilted = &lines[1]["crops"][0];
    assert!(tilted["angle"].as_f64().unwrap().abs() > 30.0, "{tilted}");
    // Four crops side by side with 4 px gaps.
    assert_eq!(
        image::image_dimensions(&strip).unwrap(),
        (4 * 96 + 3 * 4, 112)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn extract_arcface_gives_112_square_crops_and_survives_a_bad_image() {
    let dir = out_dir("arcface");
    let missing = testdata().join("images/does_not_exist.jpg");
    let out = cli()
        .args(["extract", "--arcface", "--out"])
        .arg(&dir)
        .arg(&missing)
        .arg(image("portrait_frontal.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one image failed: exit 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does_not_exist.jpg"));
    let crop = dir.join("portrait_frontal_face1.png");
    assert_eq!(image::image_dimensions(&crop).unwrap(), (112, 112));
    // ArcFace crops have a fixed geometry: the other geometry options are usage errors.
    let out = cli()
        .args(["extract", "--arcface", "--target-size", "64x64", "--out"])
        .arg(&dir)
        .arg(image("portrait_frontal.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = cli()
        .args(["extract", "--target-size", "64", "--out"])
        .arg(&dir)
        .arg(image("portrait_frontal.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Pixels of the box colour in an annotated picture.
fn box_pixels(path: &std::path::Path) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    img.pixels()
        .filter(|p| *p == &retinaface::annotate::BOX_COLOR)
        .count()
}

#[test]
fn annotate_draws_the_faces_into_a_png() {
    let dir = out_dir("annotate");
    let file = dir.join("group.png");
    let out = cli()
        .args(["annotate", &image("small_group.jpg"), "--out"])
        .arg(&file)
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(image::image_dimensions(&file).unwrap(), (500, 375));
    // Three boxes of roughly 60x80 px outlined, plus their labels.
    assert!(
        box_pixels(&file) > 3 * 2 * (60 + 80),
        "{}",
        box_pixels(&file)
    );
    // And `detect --annotate DIR` with several images writes one picture each.
    let pics = dir.join("pics");
    let out = cli()
        .args(["detect", "--output", "jsonl", "--annotate"])
        .arg(&pics)
        .args([&image("small_group.jpg"), &image("no_face.jpg")])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(box_pixels(&pics.join("small_group_annotated.png")) > 0);
    assert_eq!(box_pixels(&pics.join("no_face_annotated.png")), 0);
    // Output pictures are PNG.
    let out = cli()
        .args(["annotate", &image("small_group.jpg"), "--out"])
        .arg(dir.join("x.gif"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_runtime_dir_warning_without_xdg_runtime_dir() {
    let out = cli()
        .env_remove("XDG_RUNTIME_DIR")
        .arg("info")
        .output()
        .unwrap();
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}

#[test]
fn info_prints_adapter_limits_and_weights() {
    let out = cli().arg("info").output().unwrap();
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "adapter:",
        "backend:",
        // CI's lavapipe has 8-lane subgroups: the fast family must be the one chosen there.
        "kernels:    subgroup",
        "max_storage_buffer_binding_size",
        "max_compute_workgroups_per_dimension",
        "weights:",
        "parameters",
    ] {
        assert!(text.contains(want), "info lacks {want:?}:\n{text}");
    }
    assert!(
        text.contains(&weights_path().display().to_string()),
        "{text}"
    );
    let out = cli()
        .env("RETINAFACE_WEIGHTS", "/nonexistent/w.safetensors")
        .arg("info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("adapter:") && text.contains("/nonexistent/w.safetensors"),
        "{text}"
    );
}

#[test]
fn a_directory_streams_its_images_as_json_lines_in_name_order() {
    let dir = std::env::temp_dir().join(format!("retinaface-cli-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to) in [
        ("small_group.jpg", "a.jpg"),
        ("tilted_head.png", "b.png"),
        ("no_face.jpg", "c.JPG"),
    ] {
        std::fs::copy(testdata().join("images").join(from), dir.join(to)).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "not an image, not listed").unwrap();
    std::fs::write(dir.join("broken.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
    let out = cli()
        .args(["detect", "--threshold", "0.5", "--resize", "original"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "broken.jpg fails, the rest go on"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<String> = lines
        .iter()
        .map(|l| {
            std::path::Path::new(l["image"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["a.jpg", "b.png", "c.JPG"]);
    assert_eq!(lines[0]["faces"].as_object().unwrap().len(), 3);
    assert_eq!(lines[1]["faces"].as_object().unwrap().len(), 1);
    assert_eq!(lines[2]["faces"].as_object().unwrap().len(), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.jpg"));
}

#[test]
fn profile_prints_gpu_time_per_shader() {
    let out = cli()
        .args(["detect", "--profile", &image("small_group.jpg")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Conv shader names depend on the kernel family (conv_sg_* with subgroups, as on CI).
    for shader in ["conv_", "depthwise", "nms_scan", "GFLOP/s"] {
        assert!(stderr.contains(shader), "{shader} missing from:\n{stderr}");
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 3);
}

/// A directory of `n` names for one small PNG (hard links: a few hundred files cost one
/// file's disk), made from small_group.jpg at `width` pixels wide so its faces stay findable.
fn many_copies(test: &str, n: usize, width: u32) -> std::path::PathBuf {
    let dir = out_dir(test);
    let photo = image::open(testdata().join("images/small_group.jpg")).unwrap();
    let height = photo.height() * width / photo.width();
    let small = photo.resize_exact(width, height, image::imageops::FilterType::Triangle);
    let first = dir.join("img00000.png");
    small.to_rgb8().save(&first).unwrap();
    for i in 1..n {
        std::fs::hard_link(&first, dir.join(format!("img{i:05}.png"))).unwrap();
    }
    dir
}

/// Runs the command to its end and returns its output with its peak resident memory in KiB,
/// read from the kernel's rusage for exactly this child (`wait4`; a process-wide
/// RUSAGE_CHILDREN would mix in the children of tests running beside it).
#[cfg(target_os = "linux")]
// The child is reaped by wait4 below, which std's Child cannot see.
#[allow(clippy::zombie_processes)]
fn output_and_peak_rss(mut cmd: Command) -> (std::process::Output, i64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).map(|_| v)
    });
    let mut stderr = Vec::new();
    err.read_to_end(&mut stderr).unwrap();
    let stdout = stdout.join().unwrap().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is our own unreaped child
    // (std's Child is not waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let output = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout,
        stderr,
    };
    (output, usage.ru_maxrss)
}

#[cfg(target_os = "linux")]
#[test]
fn a_directory_of_hundreds_of_images_streams_in_bounded_memory() {
    // 640 px wide: 1.1 MiB per decoded RGBA image, so holding 200 of them would add some
    // 220 MiB; the network sees each at 160 px (`max:160`), which keeps the test quick.
    let dir = many_copies("many", 200, 640);
    let run = |n: usize| {
        let mut cmd = cli();
        cmd.args(["detect", "--resize", "max:160", "--threshold", "0.5"]);
        if n == 1 {
            cmd.arg(dir.join("img00000.png"));
        } else {
            cmd.arg(&dir);
        }
        output_and_peak_rss(cmd)
    };
    let (one, one_rss) = run(1);
    ok(&one);
    let (all, all_rss) = run(200);
    ok(&all);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 200);
    let single: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    for (i, line) in lines.iter().enumerate() {
        let name = format!("img{i:05}.png");
        assert!(line["image"].as_str().unwrap().ends_with(&name), "{line}");
        assert_eq!(
            line["faces"].as_object().unwrap().len(),
            single.as_object().unwrap().len()
        );
    }
    assert!(
        all_rss - one_rss < 64 * 1024,
        "200 images peaked at {all_rss} KiB, one at {one_rss} KiB: images are being held"
    );
}

#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_run_quietly_by_sigpipe() {
    use std::io::BufRead;
    use std::os::unix::io::AsRawFd;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = many_copies("pipe", 40, 160);
    let mut child = cli()
        .args(["detect", "--resize", "original", "--threshold", "0.5"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The smallest pipe buffer (one page), so 40 lines cannot all fit into it before we
    // close it: the CLI is certain to write into a closed pipe.
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
    unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    let mut reader = std::io::BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("img00000.png"), "{first}");
    drop(reader);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "ends as `cat` would (the shell shows 141), not {:?}",
        out.status
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing said");
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_reported_and_the_other_images_processed() {
    use std::os::unix::fs::symlink;
    let dir = out_dir("loops");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(image("small_group.jpg"), dir.join("a.jpg")).unwrap();
    std::fs::copy(image("no_face.jpg"), dir.join("sub/b.jpg")).unwrap();
    // A directory link back up the tree, and a file link onto itself (ELOOP on open).
    symlink("..", dir.join("sub/up")).unwrap();
    symlink("self.jpg", dir.join("self.jpg")).unwrap();
    let out = cli()
        .args(["detect", "--threshold", "0.5", "--resize", "max:640"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the loops are failures");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let images: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let p = std::path::PathBuf::from(v["image"].as_str().unwrap());
            p.strip_prefix(&dir).unwrap().display().to_string()
        })
        .collect();
    assert_eq!(
        images,
        ["a.jpg", "sub/b.jpg"],
        "each image once, in name order"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sub/up: symlink loop"),
        "directory loop: {stderr}"
    );
    assert!(
        stderr.contains("self.jpg: cannot read: Too many levels of symbolic links"),
        "file loop: {stderr}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn an_unreadable_subdirectory_is_reported_and_the_rest_processed() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = out_dir("unreadable");
    std::fs::create_dir_all(dir.join("b_locked")).unwrap();
    std::fs::copy(image("small_group.jpg"), dir.join("a.jpg")).unwrap();
    std::fs::copy(image("no_face.jpg"), dir.join("b_locked/x.jpg")).unwrap();
    std::fs::copy(image("no_face.jpg"), dir.join("c.jpg")).unwrap();
    std::fs::set_permissions(dir.join("b_locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = cli();
    cmd.args(["detect", "--threshold", "0.5", "--resize", "max:640"])
        .arg(&dir);
    // Tests run as root on CI, and mode 000 does not stop root: CAP_DAC_OVERRIDE and
    // CAP_DAC_READ_SEARCH (capabilities 1 and 2) bypass it. Dropping both from the child's
    // bounding set before exec leaves it root without them, so the directory is unreadable
    // to it for real. A non-root user has neither to drop, and mode 000 stops it anyway.
    // SAFETY: only prctl and geteuid run between fork and exec; neither allocates.
    unsafe {
        cmd.pre_exec(|| {
            for cap in [1, 2] {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && libc::geteuid() == 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let out = cmd
        .output()
        .expect("spawn without the DAC override capabilities");
    std::fs::set_permissions(dir.join("b_locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the locked directory is a failure"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| {
            if l.contains("/a.jpg\"") {
                "a.jpg"
            } else if l.contains("/c.jpg\"") {
                "c.jpg"
            } else {
                l
            }
        })
        .collect();
    assert_eq!(names, ["a.jpg", "c.jpg"], "the others are processed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("b_locked: cannot list directory: Permission denied"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_read_and_listed_lossily() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = out_dir("non-utf8");
    // "café.jpg" in Latin-1: 0xE9 alone is not UTF-8.
    let name = OsStr::from_bytes(b"caf\xe9.jpg");
    std::fs::copy(image("small_group.jpg"), dir.join(name)).unwrap();
    let pictures = dir.join("annotated");
    let out = cli()
        .args([
            "detect",
            "--threshold",
            "0.5",
            "--resize",
            "max:640",
            "--annotate",
        ])
        .arg(&pictures)
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["image"].as_str().unwrap().ends_with("caf\u{FFFD}.jpg"),
        "{v}"
    );
    assert_eq!(v["faces"].as_object().unwrap().len(), 3);
    // The picture keeps the name's real bytes.
    assert!(pictures
        .join(OsStr::from_bytes(b"caf\xe9_annotated.png"))
        .is_file());
    // Named directly, as one image: retina-face's object, CSV with the lossy name.
    let out = cli()
        .args([
            "detect",
            "--output",
            "csv",
            "--threshold",
            "0.5",
            "--resize",
            "max:640",
        ])
        .arg(dir.join(name))
        .output()
        .unwrap();
    ok(&out);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().contains("caf\u{FFFD}.jpg,1,"),
        "{csv}"
    );
}
