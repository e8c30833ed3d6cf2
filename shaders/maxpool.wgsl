// Max pooling (k x k window, stride s, padding pad), channels-last f32: ResNet's stem
// maxpool (3x3, stride 2, padding 1). Padding never wins, as in PyTorch's max_pool2d, whose
// padding is -inf: only taps inside the image are compared.
//
// Invocations run along channels first, as in depthwise.wgsl: neighbours read neighbouring
// floats of the same pixel, so loads coalesce.

struct Params {
    in_w: u32,
    in_h: u32,
    channels: u32,
    out_w: u32,
    out_h: u32,
    ksize: u32,
    stride: u32,
    pad: u32,
    // Banded runs (see `ops::band`): output rows oy0 .. oy0 + rows, through windows that start
    // at float `src_base` / `dst_base` of the tensors (0, out_h, 0, 0 for a whole-map run).
    // Taps outside the image are skipped, so no zero is ever read.
    oy0: u32,
    rows: u32,
    src_base: u32,
    dst_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let ox = gid.y;
    let oy = p.oy0 + gid.z;
    if c >= p.channels || ox >= p.out_w || gid.z >= p.rows {
        return;
    }
    // The lowest finite f32: every window holds at least one tap inside the image (pad < k).
    // Written in hex: the decimal -3.40282347e+38 rounds past f32's range in Chrome's WGSL
    // compiler (Tint), which rejects it; naga accepts both.
    var m = -0x1.fffffep+127f;
    for (var ky = 0u; ky < p.ksize; ky++) {
        // Unsigned wrap-around turns "above the top edge" into "past the bottom edge".
        let iy = oy * p.stride + ky - p.pad;
        if iy >= p.in_h {
            continue;
        }
        for (var kx = 0u; kx < p.ksize; kx++) {
            let ix = ox * p.stride + kx - p.pad;
            if ix >= p.in_w {
                continue;
            }
            m = max(m, src[(iy * p.in_w + ix) * p.channels + c - p.src_base]);
        }
    }
    dst[(oy * p.out_w + ox) * p.channels + c - p.dst_base] = m;
}
