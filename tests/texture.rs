//! Frames already on the GPU: a golden photo uploaded into an RGBA8 and a BGRA8 texture gives
//! the golden faces back, read by the preprocess shader with no CPU round trip.

mod common;

use common::*;
use retinaface::{DetectOptions, Error, Resize};

fn texture(img: &image::RgbaImage, format: wgpu::TextureFormat) -> wgpu::Texture {
    upload_texture(detector().context(), img, format)
}

#[test]
fn rgba_and_bgra_textures_give_the_faces_of_the_decoded_image() {
    let opts = DetectOptions {
        threshold: 0.5,
        resize: Resize::Original,
        ..Default::default()
    };
    let img = retinaface::image_io::load_path(&testdata().join("images/worlds_largest_selfie.jpg"))
        .unwrap();
    let expected = detector().detect_with(&img, &opts).unwrap();
    // The golden file lists 28 faces for this photo at its own size.
    assert_eq!(expected.len(), 28);
    for format in [
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureFormat::Bgra8Unorm,
    ] {
        let got = detector()
            .detect_texture(&texture(&img, format), &opts)
            .unwrap();
        assert_eq!(got, expected, "{format:?}");
    }
    // With a resize the texture path samples the same way as the buffer path.
    let half = DetectOptions {
        resize: Resize::MaxSide(512),
        ..opts
    };
    let got = detector()
        .detect_texture(&texture(&img, wgpu::TextureFormat::Rgba8Unorm), &half)
        .unwrap();
    assert_eq!(got, detector().detect_with(&img, &half).unwrap());
}

/// The async entry points (the only ones in a browser) give the blocking ones' faces; natively
/// they wait for the GPU inside, so any executor drives them.
#[test]
fn async_entry_points_give_the_same_faces() {
    let opts = DetectOptions {
        threshold: 0.5,
        resize: Resize::MaxSide(512),
        ..Default::default()
    };
    let img = retinaface::image_io::load_path(&testdata().join("images/worlds_largest_selfie.jpg"))
        .unwrap();
    let d = detector();
    let expected = d.detect_with(&img, &opts).unwrap();
    assert!(!expected.is_empty());
    assert_eq!(
        pollster::block_on(d.detect_with_async(&img, &opts)).unwrap(),
        expected
    );
    let tex = texture(&img, wgpu::TextureFormat::Rgba8Unorm);
    assert_eq!(
        pollster::block_on(d.detect_texture_async(&tex, &opts)).unwrap(),
        expected
    );
    let (faces, profile) =
        pollster::block_on(d.detect_texture_profiled_async(&tex, &opts)).unwrap();
    assert_eq!(faces, expected);
    let timestamps = d
        .context()
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY);
    assert_eq!(!profile.steps.is_empty(), timestamps);
}

#[test]
fn unsupported_texture_format_is_an_error() {
    let ctx = detector().context();
    let tex = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: 64,
            height: 64,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8UnormSrgb,
        usage: wgpu::TextureUsages::TEXTURE_BINDING,
        view_formats: &[],
    });
    let e = detector()
        .detect_texture(&tex, &DetectOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedPixelFormat { .. }), "{e}");
}
