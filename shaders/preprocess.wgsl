// 8-bit RGBA pixels (one u32 per pixel, R in the low byte) to the network input: bilinear
// resize with half-pixel centres clamped at the borders (OpenCV INTER_LINEAR, no
// antialiasing), channels-last f32 with a fourth channel of zeros, in one of two formats:
// - 0, Pytorch_Retinaface: BGR minus the mean (104, 117, 123), interpolated values as they are;
// - 1, retina-face (net3): RGB, raw 0..255, each value rounded to an integer as OpenCV's
//   uint8 resize leaves it before the package converts the image to float.
//
// `scale` is source pixels per destination pixel. It is the inverse of the nominal resize
// factor, not in/out, when the caller resized by a factor, as OpenCV does for fx/fy.

struct Params {
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
    scale_x: f32,
    scale_y: f32,
    format: u32,
    // Banded runs (see `ops::band`): output rows y0 .. y0 + rows, through windows that start
    // at pixel `src_base` / `dst_base` of the source image and the network input (0, dst_h, 0,
    // 0 for a whole-image run).
    y0: u32,
    rows: u32,
    src_base: u32,
    dst_base: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

const MEAN_BGR = vec3<f32>(104.0, 117.0, 123.0);

fn pixel_bgr(x: u32, y: u32) -> vec3<f32> {
    let v = unpack4x8unorm(src[y * p.src_w + x - p.src_base]) * 255.0;
    return v.bgr;
}

// Source index and weight of the second tap along one axis.
fn taps(d: u32, scale: f32, size: u32) -> vec3<f32> {
    let f = (f32(d) + 0.5) * scale - 0.5;
    var i = floor(f);
    var t = f - i;
    if i < 0.0 {
        i = 0.0;
        t = 0.0;
    }
    if i >= f32(size - 1u) {
        i = f32(size - 1u);
        t = 0.0;
    }
    let i1 = min(i + 1.0, f32(size - 1u));
    return vec3<f32>(i, i1, t);
}

// Interpolates the four taps (BGR, 0..255) and writes the network input pixel.
fn store(o: vec2<u32>, p00: vec3<f32>, p10: vec3<f32>, p01: vec3<f32>, p11: vec3<f32>, t: vec2<f32>) {
    let top = mix(p00, p10, t.x);
    let bottom = mix(p01, p11, t.x);
    let bgr = mix(top, bottom, t.y);
    let v = select(bgr - MEAN_BGR, round(bgr).zyx, p.format == 1u);
    // A fourth, zero channel makes each pixel one vec4 for the first convolution.
    dst[o.y * p.dst_w + o.x - p.dst_base] = vec4<f32>(v, 0.0);
}

// The source pixels of an output pixel: columns x0, x1, rows y0, y1, and the weights of x1, y1.
struct Taps {
    x: vec2<u32>,
    y: vec2<u32>,
    t: vec2<f32>,
}

fn taps_of(o: vec2<u32>) -> Taps {
    let tx = taps(o.x, p.scale_x, p.src_w);
    let ty = taps(o.y, p.scale_y, p.src_h);
    return Taps(vec2<u32>(tx.xy), vec2<u32>(ty.xy), vec2<f32>(tx.z, ty.z));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x >= p.dst_w || gid.y >= p.rows {
        return;
    }
    let o = vec2<u32>(gid.x, p.y0 + gid.y);
    let k = taps_of(o);
    store(o, pixel_bgr(k.x.x, k.y.x), pixel_bgr(k.x.y, k.y.x), pixel_bgr(k.x.x, k.y.y), pixel_bgr(k.x.y, k.y.y), k.t);
}

// The same from an RGBA8 or BGRA8 unorm texture (a render target, a decoded video frame):
// textureLoad returns the channels in RGBA order whatever the memory order.
@group(0) @binding(3) var src_texture: texture_2d<f32>;

fn texel_bgr(x: u32, y: u32) -> vec3<f32> {
    // Back to the 8-bit values: unorm8 is v / 255, exactly invertible after rounding.
    return round(textureLoad(src_texture, vec2<u32>(x, y), 0).bgr * 255.0);
}

@compute @workgroup_size(16, 16, 1)
fn from_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x >= p.dst_w || gid.y >= p.rows {
        return;
    }
    let o = vec2<u32>(gid.x, p.y0 + gid.y);
    let k = taps_of(o);
    store(o, texel_bgr(k.x.x, k.y.x), texel_bgr(k.x.y, k.y.x), texel_bgr(k.x.x, k.y.y), texel_bgr(k.x.y, k.y.y), k.t);
}
