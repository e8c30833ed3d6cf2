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
