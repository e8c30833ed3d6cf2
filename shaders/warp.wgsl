// Face crops of one image, all in one dispatch (z = crop index): every output pixel is mapped
// by its crop's affine matrix to a position in the source image and sampled there with
// bilinear interpolation. Rotation, scaling and letterboxing are all in the matrix, so no
// rotated copy of the whole image is ever made.
//
// Coordinates are pixel indices: pixel (i, j) has its centre at (i, j) in both images (the
// convention of OpenCV's warpAffine with WARP_INVERSE_MAP). Outside the source, the nearest
// edge pixel is used (clamp to edge), so rotated crops of faces near the border get no black
// corners. Outside a crop's inner rectangle (the letterbox bands of a target size) the output
// is black.
//
// When a crop shrinks the source (more than one source pixel per output pixel), each output
// pixel averages `samples` x `samples` bilinear taps spread over its footprint, so strong
// downscaling does not alias.

struct Params {
    src_w: u32,
    src_h: u32,
    // 0: one packed RGBA8 u32 per pixel (alpha 255); 1: three f32 (R, G, B in [0, 1]).
    float_out: u32,
    n_crops: u32,
}

struct Crop {
    // Source x = m0.x * x + m0.y * y + m0.z for output pixel (x, y); m0.w unused.
    m0: vec4<f32>,
    // Source y = m1.x * x + m1.y * y + m1.z.
    m1: vec4<f32>,
    size: vec2<u32>,
    // The inner rectangle [inner_lo, inner_hi) that shows the image; black outside.
    inner_lo: vec2<u32>,
    inner_hi: vec2<u32>,
    // First u32 of this crop in `dst`.
    offset: u32,
    samples: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> crops: array<Crop>;
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

fn texel(x: i32, y: i32) -> vec3<f32> {
    let cx = u32(clamp(x, 0, i32(p.src_w) - 1));
    let cy = u32(clamp(y, 0, i32(p.src_h) - 1));
    return unpack4x8unorm(src[cy * p.src_w + cx]).rgb * 255.0;
}

// Bilinear sample at a source position in pixel-index coordinates, 0..255 per channel.
fn bilinear(pos: vec2<f32>) -> vec3<f32> {
    // Far outside the image every tap clamps to the same edge pixel; clamping the position
    // first keeps the float-to-int conversion in range.
    let q = clamp(pos, vec2<f32>(-1.0), vec2<f32>(f32(p.src_w), f32(p.src_h)));
    let f = floor(q);
    let t = q - f;
    let x = i32(f.x);
    let y = i32(f.y);
    let top = mix(texel(x, y), texel(x + 1, y), t.x);
    let bottom = mix(texel(x, y + 1), texel(x + 1, y + 1), t.x);
    return mix(top, bottom, t.y);
}

// 16x16: neighbouring invocations write neighbouring output pixels, and their source taps are
// neighbours too (a rotation keeps neighbourhoods), so reads stay in the same cache lines.
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.z >= p.n_crops {
        return;
    }
    let c = crops[gid.z];
    // The grid is sized for the largest crop; smaller ones leave invocations idle.
    if gid.x >= c.size.x || gid.y >= c.size.y {
        return;
    }
    var v = vec3<f32>(0.0);
    let inside = all(gid.xy >= c.inner_lo) && all(gid.xy < c.inner_hi);
    if inside {
        let n = max(c.samples, 1u);
        let inv_n = 1.0 / f32(n);
        for (var j = 0u; j < n; j++) {
            for (var i = 0u; i < n; i++) {
                // Sub-pixel offsets centred on the output pixel: -0.5 + (k + 0.5) / n.
                let o = (vec2<f32>(f32(i), f32(j)) + 0.5) * inv_n - 0.5;
                let x = f32(gid.x) + o.x;
                let y = f32(gid.y) + o.y;
                let pos = vec2<f32>(
                    c.m0.x * x + c.m0.y * y + c.m0.z,
                    c.m1.x * x + c.m1.y * y + c.m1.z,
                );
                v += bilinear(pos);
            }
        }
        v *= inv_n * inv_n;
    }
    let pixel = gid.y * c.size.x + gid.x;
    if p.float_out == 0u {
        // Round half up, in the 0..255 domain so the CPU reference can do exactly the same.
        let b = vec3<u32>(clamp(floor(v + 0.5), vec3<f32>(0.0), vec3<f32>(255.0)));
        dst[c.offset + pixel] = b.x | (b.y << 8u) | (b.z << 16u) | (255u << 24u);
    } else {
        let o = c.offset + pixel * 3u;
        let f = v / 255.0;
        dst[o] = bitcast<u32>(f.x);
        dst[o + 1u] = bitcast<u32>(f.y);
        dst[o + 2u] = bitcast<u32>(f.z);
    }
}
