// FPN top-down step: fine += nearest_upsample(coarse) to the fine map's exact size, in place.
// Nearest follows PyTorch's F.interpolate(size=...): src = floor(dst * in / out), done in
// integers so odd sizes (13 <- 7) pick the same rows as the reference.

struct Params {
    fine_w: u32,
    fine_h: u32,
    coarse_w: u32,
    coarse_h: u32,
    channels: u32,
    // Banded runs (see `ops::band`): fine rows y0 .. y0 + rows, through windows that start at
    // float `fine_base` / `coarse_base` of the tensors (0, fine_h, 0, 0 for a whole-map run).
    y0: u32,
    rows: u32,
    fine_base: u32,
    coarse_base: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coarse: array<f32>;
@group(0) @binding(2) var<storage, read_write> fine: array<f32>;

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let x = gid.y;
    let y = p.y0 + gid.z;
    if c >= p.channels || x >= p.fine_w || gid.z >= p.rows {
        return;
    }
    let sx = x * p.coarse_w / p.fine_w;
    let sy = y * p.coarse_h / p.fine_h;
    let i = (y * p.fine_w + x) * p.channels + c - p.fine_base;
    fine[i] = fine[i] + coarse[(sy * p.coarse_w + sx) * p.channels + c - p.coarse_base];
}
