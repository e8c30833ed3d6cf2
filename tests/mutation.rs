//! Deterministic mutation tests of every parser of outside bytes (issue 11): the PyTorch `.pth`
//! reader (legacy and zip), safetensors loading, the Keras HDF5 reader and image decoding (JPEG
//! and PNG). Each format gets 5,000 damaged copies of small valid seed files
//! (`tests/mutation_seeds/`, made by its `make_seeds.py`): bit flips, bytes set to boundary
//! values, truncations, the format's own length and size fields inflated, splices and
//! duplicated regions. Every case must end in `Ok` or one of the crate's typed errors: no
//! panic, no case over [`CASE_TIMEOUT`], and no allocation larger than the bound of
//! [`Bound`], measured by the counting allocator below. The seed and index of a failing case
//! are printed, so `cargo test --test mutation -- <name>` replays it. The same entry points are
//! cargo-fuzz targets in `fuzz/` for longer runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use retinaface::image_io;
use retinaface::model::{h5, pth, weights::Weights};
use retinaface::Error;

// ---------------------------------------------------------------------------------------------
// Allocation accounting

/// Counts, per thread, the largest single allocation and the peak of live bytes since the last
/// [`reset`]. Each case runs on one worker thread, so parallel tests do not see each other.
struct Counting;

thread_local! {
    // Const-initialised and without destructors: reading them inside the allocator allocates
    // nothing and cannot fail during thread teardown.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static CASE: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Requests above this are refused (null, which Rust turns into an abort) after printing the
/// case, instead of letting a hostile header drive the test machine into swap: every bound of
/// this file is far below it.
const HARD_CAP: usize = 1 << 30;

fn note_alloc(size: usize) -> bool {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(size as isize);
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    if size > HARD_CAP {
        let case = CASE.try_with(Cell::get).unwrap_or(u64::MAX);
        let mut buf = [0u8; 160];
        let mut w = &mut buf[..];
        let _ = writeln!(
            w,
            "mutation test: case {case} asked for one allocation of {size} bytes; refusing"
        );
        let n = 160 - w.len();
        let _ = std::io::stderr().write_all(&buf[..n]);
        return false;
    }
    true
}

fn note_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size as isize)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note_alloc(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note_alloc(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note_alloc(new_size) {
            return std::ptr::null_mut();
        }
        note_free(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn reset(case: u64) {
    CASE.with(|c| c.set(case));
    LARGEST.with(|l| l.set(0));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
}

/// (largest single allocation, peak live bytes) since [`reset`] on this thread.
fn measured() -> (usize, usize) {
    (
        LARGEST.with(Cell::get),
        PEAK.with(|p| p.get().max(0) as usize),
    )
}

/// The most a parser may allocate for an input of `len` bytes: `slack + factor * len`, for the
/// largest single allocation and for the peak of live bytes alike.
///
/// The 1 MiB slack covers fixed costs independent of the input (libstd's buffers, hash tables'
/// first allocations, a decoder's tables). The factor is what the format legitimately expands
/// to, which the parsers enforce before allocating (see each `*_FACTOR`); what this catches is
/// an allocation driven by a size the file *declares* (a 100 GB tensor, a 65000x65000 image)
/// rather than by the bytes it holds.
#[derive(Clone, Copy)]
struct Bound {
    slack: usize,
    factor: usize,
}

const SLACK: usize = 1 << 20;

/// hdf5-reader reserves room for the entry count that an object header or B-tree node declares
/// before reading the entries: a 16-bit count, so at most 65535 x 144 bytes = 9.4 MB per
/// structure however small the file. A fixed ceiling, not a size from the file, but above
/// [`SLACK`]; a mutant damages up to three structures.
const H5_SLACK: usize = 3 * 65535 * 144 + SLACK;

/// Weights: every tensor is a copy of bytes the file holds (as f32, the same size), a parser
/// keeps at most one more copy (the HDF5 reader copies its input; a zip entry is read out) and
/// vectors grow by doubling: 4 copies x 2 for growth, doubled again for good measure. The
/// pickle machine's stack and memo grow faster than the input (a one-byte opcode pushes a
/// 32-byte value), but are linear in it and, for the seeds, well inside [`SLACK`]; the
/// million-deep pickle test below measures that rate on a large input.
const WEIGHTS_FACTOR: usize = 16;

/// JPEG: the decoder refuses a header declaring more 8x8 blocks than the file has bits (no
/// Huffman-coded block takes less than one bit), so an image has at most 64 pixels per bit,
/// 512 per byte, and its RGBA output 4 bytes a pixel.
const JPEG_FACTOR: usize = 512 * 4;

/// PNG: the decoder refuses a header declaring more pixel data than its IDAT chunks could
/// inflate to (deflate expands at most 1032:1). A pixel may take a single bit of that data
/// (1-bit grey or palette) and up to 7 bytes of memory while it is decoded (the decoder's RGB
/// buffer and the RGBA copy made from it): 56 bytes per byte of pixel data, rounded up to 64.
const PNG_FACTOR: usize = 1032 * 64;

impl Bound {
    fn limit(self, len: usize) -> usize {
        self.slack + self.factor * len
    }
    fn weights() -> Self {
        Bound {
            slack: SLACK,
            factor: WEIGHTS_FACTOR,
        }
    }
}

/// Longest a single case may run. Every seed parses in well under a millisecond; anything
/// near this is a loop driven by a declared count.
const CASE_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and mutators

/// SplitMix64: tiny, fast and fully determined by its seed, so a case is replayed by its index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A number inside a seed that the format reads as a length, size, count, dimension or offset.
#[derive(Clone, Copy, Debug)]
struct Field {
    at: usize,
    width: usize,
    big_endian: bool,
}

impl Field {
    fn le(at: usize, width: usize) -> Self {
        Field {
            at,
            width,
            big_endian: false,
        }
    }
    fn be(at: usize, width: usize) -> Self {
        Field {
            at,
            width,
            big_endian: true,
        }
    }
    fn read(&self, b: &[u8]) -> Option<u64> {
        let s = b.get(self.at..self.at + self.width)?;
        let mut v = 0u64;
        for i in 0..self.width {
            let byte = if self.big_endian {
                s[i]
            } else {
                s[self.width - 1 - i]
            };
            v = (v << 8) | byte as u64;
        }
        Some(v)
    }
    fn write(&self, b: &mut [u8], v: u64) {
        let Some(s) = b.get_mut(self.at..self.at + self.width) else {
            return;
        };
        for i in 0..self.width {
            let byte = (v >> (8 * i)) as u8;
            if self.big_endian {
                s[self.width - 1 - i] = byte;
            } else {
                s[i] = byte;
            }
        }
    }
}

/// Values that break size arithmetic: off by one, doubled, the type's extremes, and the
/// 100 GB that the issue names.
fn inflated(rng: &mut Rng, old: u64, width: usize, len: usize) -> u64 {
    let max = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let choices = [
        old.wrapping_add(1),
        old.wrapping_sub(1),
        old.wrapping_mul(2),
        old.wrapping_mul(16),
        old.wrapping_mul(1000),
        0,
        1,
        max,
        max / 2,
        max / 2 + 1,
        len as u64,
        len as u64 + 1,
        100_000_000_000,
        25_000_000_000,
        1 << 31,
        1 << 32,
        1 << 40,
        65500,
    ];
    rng.pick(&choices) & max
}

/// A seed with the structure a mutator may aim at.
struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
    fields: Vec<Field>,
    /// Offsets where a structure starts or ends (truncation points).
    cuts: Vec<usize>,
}

const BOUNDARY_BYTES: [u8; 8] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x40, 0x10];

/// Applies one mutation to `b`, returning what it did.
fn mutate_once(rng: &mut Rng, b: &mut Vec<u8>, seed: &Seed, donors: &[Seed]) -> String {
    if b.is_empty() {
        b.push(rng.next() as u8);
        return "grow an empty file".into();
    }
    let len = b.len();
    match rng.below(12) {
        0 => {
            let i = rng.below(len);
            let bit = rng.below(8);
            b[i] ^= 1 << bit;
            format!("flip bit {bit} of byte {i}")
        }
        1 => {
            let n = 2 + rng.below(15);
            for _ in 0..n {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            format!("flip {n} bits")
        }
        2 => {
            let n = 1 + rng.below(4);
            for _ in 0..n {
                let i = rng.below(len);
                b[i] = *rng.pick(&BOUNDARY_BYTES);
            }
            format!("set {n} bytes to boundary values")
        }
        3 => {
            let width = *rng.pick(&[2, 4, 8]);
            let at = rng.below(len);
            let f = if rng.below(2) == 0 {
                Field::le(at, width)
            } else {
                Field::be(at, width)
            };
            let old = f.read(b).unwrap_or(0);
            let v = inflated(rng, old, width, len);
            f.write(b, v);
            format!("write {v} into {width} bytes at {at}")
        }
        4 => {
            let at = rng.below(len);
            b.truncate(at);
            format!("truncate at {at}")
        }
        5 if !seed.cuts.is_empty() => {
            let at = (*rng.pick(&seed.cuts) + rng.below(3)).saturating_sub(1);
            b.truncate(at.min(len));
            format!("truncate at structural point {at}")
        }
        6 | 7 if !seed.fields.is_empty() => {
            let f = *rng.pick(&seed.fields);
            let old = f.read(b).unwrap_or(0);
            let v = inflated(rng, old, f.width, len);
            f.write(b, v);
            format!("field at {} ({} bytes): {old} -> {v}", f.at, f.width)
        }
        8 => {
            // Splice: a region of this or another seed of the format replaces one of ours.
            let donor = &rng.pick(donors).bytes;
            let from = rng.below(donor.len());
            let n = rng.below(donor.len() - from).min(256) + 1;
            let at = rng.below(len);
            let end = (at + rng.below(n + 1)).min(len);
            b.splice(at..end, donor[from..from + n].iter().copied());
            format!("splice {n} donor bytes from {from} over {at}..{end}")
        }
        9 => {
            let from = rng.below(len);
            let n = (rng.below(len - from) + 1).min(512);
            let region = b[from..from + n].to_vec();
            let at = rng.below(len + 1);
            b.splice(at..at, region);
            format!("duplicate {n} bytes from {from} at {at}")
        }
        10 => {
            let from = rng.below(len);
            let n = (rng.below(len - from) + 1).min(64);
            b.drain(from..from + n);
            format!("delete {n} bytes at {from}")
        }
        _ => {
            // A small number somewhere is probably a size or a count: blow one up.
            let width = *rng.pick(&[2, 4, 8]);
            let start = rng.below(len);
            for k in 0..len {
                let at = (start + k) % len;
                let f = Field::le(at, width);
                match f.read(b) {
                    Some(v) if (2..=len as u64).contains(&v) => {
                        let nv = inflated(rng, v, width, len);
                        f.write(b, nv);
                        return format!("small integer at {at} ({width} bytes): {v} -> {nv}");
                    }
                    _ => {}
                }
            }
            "no small integer found".into()
        }
    }
}

/// One to three mutations; `fixup` then repairs what the format checksums (PNG CRCs), some
/// of the time, so that damage gets past the checksum to the code behind it.
fn mutant(rng: &mut Rng, seeds: &[Seed], fixup: Option<fn(&mut [u8])>) -> (Vec<u8>, String) {
    let seed = rng.pick(seeds);
    let mut b = seed.bytes.clone();
    let n = 1 + [0, 0, 0, 1, 1, 2][rng.below(6)];
    let mut what = vec![seed.name.to_string()];
    for _ in 0..n {
        what.push(mutate_once(rng, &mut b, seed, seeds));
    }
    if let Some(fix) = fixup {
        if rng.below(4) != 0 {
            fix(&mut b);
            what.push("checksums fixed".into());
        }
    }
    (b, what.join("; "))
}

// ---------------------------------------------------------------------------------------------
// Running cases

/// Runs `cases` cases made by `make(rng)` through `check` on a worker thread, with a per-case
/// timeout, panic capture and the allocation bound. Fails listing every bad case.
fn run_cases(
    format: &'static str,
    base_seed: u64,
    cases: usize,
    bound: Bound,
    make: impl Fn(&mut Rng) -> (Vec<u8>, String) + Send + 'static,
    check: fn(&[u8]) -> Result<(), String>,
) {
    enum Msg {
        Start(usize),
        Done(Option<String>, usize),
    }
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    record_panic_locations();
    std::thread::Builder::new()
        .name(format!("mutation-{format}"))
        .spawn(move || {
            for i in 0..cases {
                let case_seed = base_seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
                let mut rng = Rng(case_seed);
                let (input, what) = make(&mut rng);
                if tx.send(Msg::Start(i)).is_err() {
                    return;
                }
                reset(i as u64);
                PANIC_AT.with(|p| p.borrow_mut().clear());
                let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
                let (largest, peak) = measured();
                let limit = bound.limit(input.len());
                let problem = match outcome {
                    Err(p) => Some(format!(
                        "panicked at {}: {}",
                        PANIC_AT.with(|p| p.borrow().clone()),
                        p.downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| p.downcast_ref::<&str>().copied())
                            .unwrap_or("(no message)")
                    )),
                    Ok(Err(e)) => Some(e),
                    Ok(Ok(())) if largest > limit || peak > limit => Some(format!(
                        "allocated {largest} bytes at once, {peak} live, over the bound of {limit} for {} input bytes",
                        input.len()
                    )),
                    Ok(Ok(())) => None,
                };
                let problem = problem.map(|p| format!("case {i} [{what}]: {p}"));
                if tx.send(Msg::Done(problem, largest)).is_err() {
                    return;
                }
            }
        })
        .unwrap();
    let mut failures = Vec::new();
    let mut done = 0;
    let mut largest_seen = 0;
    let mut current = None;
    while done < cases {
        match rx.recv_timeout(CASE_TIMEOUT) {
            Ok(Msg::Start(i)) => current = Some(i),
            Ok(Msg::Done(problem, largest)) => {
                done += 1;
                largest_seen = largest_seen.max(largest);
                failures.extend(problem);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "{format}: case {current:?} (base seed {base_seed:#x}) ran over {CASE_TIMEOUT:?}; \
                 failures before it: {failures:#?}"
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{format}: the worker died after {done} cases; failures: {failures:#?}")
            }
        }
    }
    eprintln!(
        "{format}: {cases} cases in {:.2?}, largest allocation {largest_seen} bytes",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{format}: {} of {cases} cases failed (base seed {base_seed:#x}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

thread_local! {
    /// Where the last panic on this thread happened, for the failure report.
    static PANIC_AT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Chains a panic hook that notes the panic's location for [`run_cases`] (a caught panic's
/// payload has only the message).
fn record_panic_locations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(l) = info.location() {
                let at = format!("{}:{}", l.file(), l.line());
                let _ = PANIC_AT.try_with(|p| *p.borrow_mut() = at);
            }
            previous(info);
        }));
    });
}

/// An error must be one of the crate's typed errors that this parser may raise, with a message.
fn expect_kind(e: &Error, allowed: fn(&Error) -> bool) -> Result<(), String> {
    if e.to_string().trim().is_empty() {
        return Err(format!("error with an empty message: {e:?}"));
    }
    if allowed(e) {
        Ok(())
    } else {
        Err(format!("unexpected error kind: {e:?}"))
    }
}

fn seed_file(kind: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/mutation_seeds/{kind}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Format structure: where each seed keeps its lengths, sizes and dimensions

/// Walks a pickle from `at` to its STOP opcode, collecting length and integer arguments.
/// Returns the offset after STOP.
fn pickle_fields(b: &[u8], mut at: usize, fields: &mut Vec<Field>, cuts: &mut Vec<usize>) -> usize {
    while at < b.len() {
        let op = b[at];
        cuts.push(at);
        let arg = at + 1;
        let len_field = |w: usize| Field::le(arg, w).read(b).unwrap_or(0) as usize;
        at = match op {
            b'.' => return at + 1,
            0x80 | b'K' | b'q' | b'h' => arg + 1,
            b'M' => arg + 2,
            b'J' | b'r' | b'j' => arg + 4,
            b'G' => arg + 8,
            0x95 => {
                fields.push(Field::le(arg, 8));
                arg + 8
            }
            b'X' | b'B' => {
                fields.push(Field::le(arg, 4));
                arg + 4 + len_field(4)
            }
            0x8c | b'C' | 0x8a => {
                fields.push(Field::le(arg, 1));
                arg + 1 + len_field(1)
            }
            0x8d | 0x8e => {
                fields.push(Field::le(arg, 8));
                arg + 8 + len_field(8)
            }
            b'c' => {
                let lines = b[arg..]
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b'\n')
                    .nth(1)
                    .map(|(i, _)| i + 1)
                    .unwrap_or(b.len());
                arg + lines
            }
            _ => arg,
        };
        if matches!(op, b'J' | b'K' | b'M') {
            // Integers: sizes, strides, offsets and storage element counts.
            fields.push(Field::le(arg, at - arg));
        }
    }
    at
}

fn pth_seeds() -> Vec<Seed> {
    let legacy = seed_file("pth", "legacy.pth.seed");
    let mut fields = Vec::new();
    let mut cuts = Vec::new();
    let mut at = 0;
    for _ in 0..5 {
        at = pickle_fields(&legacy, at, &mut fields, &mut cuts);
    }
    // After the five pickles: each storage's u64 element count, then its data.
    fields.push(Field::le(at, 8));
    cuts.push(at);
    cuts.push(at + 8);
    let legacy = Seed {
        name: "legacy.pth.seed",
        bytes: legacy,
        fields,
        cuts,
    };
    let zip = seed_file("pth", "zip.pth.seed");
    let (fields, cuts) = zip_fields(&zip);
    vec![
        legacy,
        Seed {
            name: "zip.pth.seed",
            bytes: zip,
            fields,
            cuts,
        },
    ]
}

fn find_all(b: &[u8], needle: &[u8]) -> Vec<usize> {
    b.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Sizes, name lengths and offsets of the local headers, central directory and its end record,
/// plus the fields of the `data.pkl` pickle stored inside.
fn zip_fields(b: &[u8]) -> (Vec<Field>, Vec<usize>) {
    let mut fields = Vec::new();
    let mut cuts = Vec::new();
    for at in find_all(b, b"PK\x03\x04") {
        cuts.push(at);
        for (off, w) in [(8, 2), (18, 4), (22, 4), (26, 2), (28, 2)] {
            fields.push(Field::le(at + off, w));
        }
        let name_len = Field::le(at + 26, 2).read(b).unwrap_or(0) as usize;
        let extra = Field::le(at + 28, 2).read(b).unwrap_or(0) as usize;
        let data = at + 30 + name_len + extra;
        if b.get(at + 30..at + 30 + name_len) == Some(b"archive/data.pkl") {
            pickle_fields(b, data, &mut fields, &mut cuts);
        }
    }
    for at in find_all(b, b"PK\x01\x02") {
        cuts.push(at);
        for (off, w) in [
            (10, 2),
            (20, 4),
            (24, 4),
            (28, 2),
            (30, 2),
            (32, 2),
            (42, 4),
        ] {
            fields.push(Field::le(at + off, w));
        }
    }
    for at in find_all(b, b"PK\x05\x06") {
        cuts.push(at);
        for (off, w) in [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)] {
            fields.push(Field::le(at + off, w));
        }
    }
    (fields, cuts)
}

/// The safetensors header length; the JSON's shapes and offsets are mutated as JSON by
/// [`safetensors_json_mutant`].
fn safetensors_seeds() -> Vec<Seed> {
    let bytes = seed_file("safetensors", "seed.safetensors.seed");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    vec![Seed {
        name: "seed.safetensors.seed",
        fields: vec![Field::le(0, 8)],
        cuts: vec![8, 8 + n, bytes.len() - 4],
        bytes,
    }]
}

/// Rewrites one tensor's `shape`, `data_offsets` or `dtype` in the JSON header and fixes the
/// header length, so the damage is in what the header declares, not in its syntax.
fn safetensors_json_mutant(rng: &mut Rng, bytes: &[u8]) -> (Vec<u8>, String) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let names: Vec<String> = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let name = rng.pick(&names).clone();
    let t = header[&name].as_object_mut().unwrap();
    let what = match rng.below(4) {
        0 | 1 => {
            let key = if rng.below(2) == 0 {
                "shape"
            } else {
                "data_offsets"
            };
            let arr = t[key].as_array_mut().unwrap();
            if arr.is_empty() {
                arr.push(serde_json::json!(1));
            }
            let i = rng.below(arr.len());
            let old = arr[i].as_u64().unwrap_or(0);
            let v = inflated(rng, old, 8, data.len());
            arr[i] = serde_json::json!(v);
            format!("{name}.{key}[{i}]: {old} -> {v}")
        }
        2 => {
            let dtype = *rng.pick(&["F16", "F64", "I8", "BOOL", "U64", "F8_E4M3", "X"]);
            t.insert("dtype".into(), serde_json::json!(dtype));
            format!("{name}.dtype -> {dtype}")
        }
        _ => {
            // 100 GB of float32 declared, with the file's real data after the header.
            t.insert("shape".into(), serde_json::json!([25_000_000_000u64]));
            t.insert(
                "data_offsets".into(),
                serde_json::json!([0, 100_000_000_000u64]),
            );
            format!("{name} declares 100 GB")
        }
    };
    let mut h = serde_json::to_vec(&header).unwrap();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    (out, what)
}

/// HDF5 (superblock version 0, version-1 object headers, as Keras writes): the superblock's
/// addresses, the sizes in local heaps, B-tree and symbol-table nodes and global heap
/// collections, every object header's message count, size and message sizes, and every
/// dataspace's dimensions.
fn h5_fields(b: &[u8]) -> (Vec<Field>, Vec<usize>) {
    let mut fields = Vec::new();
    let mut cuts = vec![8, 24, 56, 96];
    // Superblock v0: sizes of offsets/lengths, B-tree K values, then base, free-space, EOF and
    // driver addresses, then the root's symbol table entry (header, B-tree and heap addresses).
    for (off, w) in [
        (13, 1),
        (14, 1),
        (16, 2),
        (18, 2),
        (24, 8),
        (40, 8),
        (64, 8),
        (80, 8),
        (88, 8),
    ] {
        fields.push(Field::le(off, w));
    }
    for at in find_all(b, b"HEAP") {
        cuts.push(at);
        fields.extend([
            Field::le(at + 8, 8),
            Field::le(at + 16, 8),
            Field::le(at + 24, 8),
        ]);
    }
    for at in find_all(b, b"TREE") {
        cuts.push(at);
        fields.extend([Field::le(at + 5, 1), Field::le(at + 6, 2)]);
    }
    for at in find_all(b, b"SNOD") {
        cuts.push(at);
        fields.push(Field::le(at + 6, 2));
    }
    for at in find_all(b, b"GCOL") {
        cuts.push(at);
        fields.push(Field::le(at + 8, 8));
    }
    for at in 0..b.len().saturating_sub(24) {
        // Version-1 object header prefix: version 1, reserved 0, message count, reference count
        // 1, header size; the messages start 16 bytes in, each with a 2-byte size at +2.
        let count = Field::le(at + 2, 2).read(b).unwrap_or(0);
        let size = Field::le(at + 8, 4).read(b).unwrap_or(0) as usize;
        if b[at] == 1
            && b[at + 1] == 0
            && (1..=64).contains(&count)
            && Field::le(at + 4, 4).read(b) == Some(1)
            && (8..=b.len() - at).contains(&size)
            && b[at + 12..at + 16] == [0; 4]
        {
            cuts.push(at);
            fields.extend([Field::le(at + 2, 2), Field::le(at + 8, 4)]);
            let mut m = at + 16;
            for _ in 0..count {
                if m + 8 > at + 16 + size || m + 8 > b.len() {
                    break;
                }
                let msg_type = Field::le(m, 2).read(b).unwrap_or(0);
                let msg_size = Field::le(m + 2, 2).read(b).unwrap_or(0) as usize;
                fields.push(Field::le(m + 2, 2));
                if msg_type == 1 && m + 16 <= b.len() && b[m + 8] == 1 {
                    // Dataspace version 1: rank at +1, dimensions (8 bytes each) from +8.
                    let rank = b[m + 9] as usize;
                    for d in 0..rank.min(8) {
                        fields.push(Field::le(m + 16 + 8 * d, 8));
                    }
                }
                m += 8 + msg_size;
            }
        }
    }
    (fields, cuts)
}

fn h5_seeds() -> Vec<Seed> {
    ["vlen_strings.h5.seed", "fixed_strings.h5.seed"]
        .into_iter()
        .map(|name| {
            let bytes = seed_file("h5", name);
            let (fields, cuts) = h5_fields(&bytes);
            Seed {
                name,
                bytes,
                fields,
                cuts,
            }
        })
        .collect()
}

/// JPEG: every segment's length; SOF's precision, height, width, component count and sampling
/// factors; SOS's component count. The entropy-coded data after each SOS is skipped.
fn jpeg_fields(b: &[u8]) -> (Vec<Field>, Vec<usize>) {
    let mut fields = Vec::new();
    let mut cuts = Vec::new();
    let mut at = 2;
    while at + 4 <= b.len() {
        if b[at] != 0xFF {
            at += 1;
            continue;
        }
        let marker = b[at + 1];
        if marker == 0x00 || marker == 0xFF || (0xD0..=0xD7).contains(&marker) {
            at += 1;
            continue;
        }
        cuts.push(at);
        if marker == 0xD9 {
            break;
        }
        let len = Field::be(at + 2, 2).read(b).unwrap_or(0) as usize;
        fields.push(Field::be(at + 2, 2));
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            fields.extend([
                Field::be(at + 4, 1),
                Field::be(at + 5, 2),
                Field::be(at + 7, 2),
            ]);
            fields.push(Field::be(at + 9, 1));
            let comps = b.get(at + 9).copied().unwrap_or(0) as usize;
            for c in 0..comps {
                fields.push(Field::be(at + 11 + 3 * c, 1));
            }
        }
        if marker == 0xDA {
            fields.push(Field::be(at + 4, 1));
        }
        at += 2 + len;
        cuts.push(at);
    }
    (fields, cuts)
}

/// PNG: every chunk's length; IHDR's width, height, bit depth, colour type and interlace.
fn png_fields(b: &[u8]) -> (Vec<Field>, Vec<usize>) {
    let mut fields = vec![
        Field::be(16, 4),
        Field::be(20, 4),
        Field::be(24, 1),
        Field::be(25, 1),
        Field::be(28, 1),
    ];
    let mut cuts = Vec::new();
    let mut at = 8;
    while at + 12 <= b.len() {
        cuts.push(at);
        fields.push(Field::be(at, 4));
        let len = Field::be(at, 4).read(b).unwrap_or(0) as usize;
        at += 12 + len;
    }
    (fields, cuts)
}

/// Recomputes every chunk's CRC, so damage inside a chunk reaches the decoder's parser.
fn fix_png_crcs(b: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= b.len() {
        let len = Field::be(at, 4).read(b).unwrap_or(0) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= b.len()) else {
            return;
        };
        let crc = crc32(&b[at + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A format's structure finder: (fields, truncation points) of a seed.
type Structure = fn(&[u8]) -> (Vec<Field>, Vec<usize>);

fn image_seeds(names: &[&'static str], fields: Structure) -> Vec<Seed> {
    names
        .iter()
        .map(|name| {
            let bytes = seed_file("image", name);
            let (fields, cuts) = fields(&bytes);
            Seed {
                name,
                bytes,
                fields,
                cuts,
            }
        })
        .collect()
}

const JPEG_SEEDS: [&str; 2] = ["baseline.jpg", "progressive_grey.jpg"];
const PNG_SEEDS: [&str; 3] = ["rgb.png", "palette_trns.png", "grey16.png"];

// ---------------------------------------------------------------------------------------------
// The entry points under test

fn check_pth(b: &[u8]) -> Result<(), String> {
    let checkpoint = |e: &Error| {
        matches!(
            e,
            Error::Checkpoint { .. } | Error::UnsafeCheckpoint { .. } | Error::TensorDtype { .. }
        )
    };
    match pth::read(b) {
        Ok(tensors) => {
            for (name, t) in &tensors {
                if t.data.len() != t.shape.iter().product::<usize>() {
                    return Err(format!(
                        "tensor {name}: {} values for shape {:?}",
                        t.data.len(),
                        t.shape
                    ));
                }
            }
        }
        Err(e) => expect_kind(&e, checkpoint)?,
    }
    // The seeds' tensors are not a whole network: loading must end in a typed error.
    match Weights::from_bytes(b) {
        Ok(_) => Err("a two-tensor file loaded as a network".into()),
        Err(_) => Ok(()),
    }
}

fn check_safetensors(b: &[u8]) -> Result<(), String> {
    match Weights::from_safetensors(b) {
        Ok(_) => Err("a two-tensor file loaded as a network".into()),
        Err(e) => expect_kind(&e, |e| {
            matches!(
                e,
                Error::WeightsFile { .. }
                    | Error::UnknownModel { .. }
                    | Error::MissingTensor { .. }
                    | Error::TensorShape { .. }
                    | Error::TensorDtype { .. }
                    | Error::NonFiniteWeight { .. }
            )
        }),
    }?;
    Weights::from_bytes(b)
        .err()
        .map(|_| ())
        .ok_or("loaded as a network".to_string())
}

fn check_h5(b: &[u8]) -> Result<(), String> {
    match h5::read(b) {
        Ok(tensors) => {
            for (name, t) in tensors
                .iter()
                .filter_map(|(n, t)| Some((n, t.as_ref().ok()?)))
            {
                if t.data.len() != t.shape.iter().product::<usize>() {
                    return Err(format!(
                        "tensor {name}: {} values for shape {:?}",
                        t.data.len(),
                        t.shape
                    ));
                }
            }
        }
        Err(e) => expect_kind(&e, |e| matches!(e, Error::KerasWeights { .. }))?,
    }
    Weights::from_bytes(b)
        .err()
        .map(|_| ())
        .ok_or("loaded as a network".to_string())
}

fn check_image(b: &[u8]) -> Result<(), String> {
    match image_io::load_bytes(b, None) {
        Ok(img) => {
            let (w, h) = img.dimensions();
            if img.as_raw().len() != w as usize * h as usize * 4 {
                return Err(format!("{w}x{h} image with {} bytes", img.as_raw().len()));
            }
            Ok(())
        }
        Err(e) => expect_kind(&e, |e| {
            matches!(
                e,
                Error::ImageDecode { .. } | Error::UnsupportedPixelFormat { .. }
            )
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Cases per format. `RETINAFACE_MUTATION_CASES` raises it for a longer local hunt (each case
/// is a function of its index, so a larger count only adds cases).
fn cases() -> usize {
    std::env::var("RETINAFACE_MUTATION_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000)
}

#[test]
fn seeds_are_valid_files_of_their_format() {
    for seed in pth_seeds() {
        let t = pth::read(&seed.bytes).unwrap_or_else(|e| panic!("{}: {e}", seed.name));
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["body.conv.weight", "body.conv.bias"],
            "{}",
            seed.name
        );
        assert_eq!(t[1].1.data, [0.0, 0.25, 0.5, 0.75], "{}", seed.name);
        assert!(
            seed.fields.len() > 20,
            "{}: {} fields",
            seed.name,
            seed.fields.len()
        );
    }
    let st = &safetensors_seeds()[0].bytes;
    let parsed = safetensors::SafeTensors::deserialize(st).unwrap();
    assert_eq!(parsed.tensor("body.conv.bias").unwrap().shape(), [4]);
    for seed in h5_seeds() {
        let t = h5::read(&seed.bytes).unwrap_or_else(|e| panic!("{}: {e}", seed.name));
        let w = t["conv1.weight"].as_ref().unwrap();
        assert_eq!(w.shape, [4, 2, 3, 3], "{}", seed.name);
        assert_eq!(t.len(), 6, "{}", seed.name);
        assert!(
            seed.fields.len() > 50,
            "{}: {} fields",
            seed.name,
            seed.fields.len()
        );
    }
    for (name, size) in [
        ("baseline.jpg", (48, 40)),
        ("progressive_grey.jpg", (32, 24)),
        ("rgb.png", (24, 20)),
        ("palette_trns.png", (32, 24)),
        ("grey16.png", (16, 12)),
    ] {
        let img = image_io::load_bytes(&seed_file("image", name), None).unwrap();
        assert_eq!(img.dimensions(), size, "{name}");
    }
}

#[test]
fn pth_mutations() {
    // Half the zip cases damage the pickle inside and store it again with a correct CRC: the
    // zip reader would otherwise stop every one of them at the checksum.
    let seeds = pth_seeds();
    let inner = zip_inner_parts(&seeds[1].bytes);
    run_cases(
        "pth",
        0x7074_6800,
        cases(),
        Bound::weights(),
        move |rng| {
            if rng.below(4) == 0 {
                let (pickle, what) = mutant(rng, &inner, None);
                (
                    rezip(&seeds[1].bytes, &pickle),
                    format!("inside the zip: {what}"),
                )
            } else {
                mutant(rng, &seeds, None)
            }
        },
        check_pth,
    );
}

/// `data.pkl` of the zip seed as a seed of its own.
fn zip_inner_parts(zip: &[u8]) -> Vec<Seed> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut pickle = Vec::new();
    std::io::Read::read_to_end(
        &mut archive.by_name("archive/data.pkl").unwrap(),
        &mut pickle,
    )
    .unwrap();
    let mut fields = Vec::new();
    let mut cuts = Vec::new();
    pickle_fields(&pickle, 0, &mut fields, &mut cuts);
    vec![Seed {
        name: "zip.pth/data.pkl",
        bytes: pickle,
        fields,
        cuts,
    }]
}

/// The zip seed with `archive/data.pkl` replaced by `pickle`.
fn rezip(zip: &[u8], pickle: &[u8]) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let name = f.name().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        out.start_file(&name, stored).unwrap();
        out.write_all(if name.ends_with("data.pkl") {
            pickle
        } else {
            &data
        })
        .unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn safetensors_mutations() {
    let seeds = safetensors_seeds();
    run_cases(
        "safetensors",
        0x7361_6665,
        cases(),
        Bound::weights(),
        move |rng| {
            if rng.below(3) == 0 {
                safetensors_json_mutant(rng, &seeds[0].bytes)
            } else {
                mutant(rng, &seeds, None)
            }
        },
        check_safetensors,
    );
}

#[test]
fn h5_mutations() {
    let seeds = h5_seeds();
    run_cases(
        "h5",
        0x6864_6635,
        cases(),
        Bound {
            slack: H5_SLACK,
            factor: WEIGHTS_FACTOR,
        },
        move |rng| mutant(rng, &seeds, None),
        check_h5,
    );
}

#[test]
fn jpeg_mutations() {
    let seeds = image_seeds(&JPEG_SEEDS, jpeg_fields);
    run_cases(
        "jpeg",
        0x6a70_6567,
        cases(),
        Bound {
            slack: SLACK,
            factor: JPEG_FACTOR,
        },
        move |rng| mutant(rng, &seeds, None),
        check_image,
    );
}

#[test]
fn png_mutations() {
    let seeds = image_seeds(&PNG_SEEDS, png_fields);
    run_cases(
        "png",
        0x706e_6700,
        cases(),
        Bound {
            slack: SLACK,
            factor: PNG_FACTOR,
        },
        move |rng| mutant(rng, &seeds, Some(fix_png_crcs)),
        check_image,
    );
}

// ---------------------------------------------------------------------------------------------
// A header that declares 100 GB is refused before anything is allocated

/// Runs `f` on this thread and returns its result with the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    reset(u64::MAX);
    let out = f();
    (out, measured().0)
}

/// What "before anything is allocated" allows: the parser's fixed costs, nothing that scales
/// with the declared size.
fn assert_refused_small<T>(what: &str, (result, largest): (Result<T, Error>, usize), needle: &str) {
    let e = match result {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e,
    };
    assert!(e.to_string().contains(needle), "{what}: {e}");
    assert!(
        largest <= SLACK,
        "{what}: allocated {largest} bytes before refusing ({e})"
    );
}

#[test]
fn safetensors_header_declaring_100_gb_is_refused_before_allocating() {
    let header = br#"{"w":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.extend_from_slice(&[0; 64]);
    assert_refused_small(
        "safetensors",
        largest_allocation(|| Weights::from_safetensors(&b)),
        "100000000000 bytes of tensor data",
    );
}

#[test]
fn pth_storage_declaring_100_gb_is_refused_before_allocating() {
    // The legacy seed with its storage's element count (in the persistent id and before the
    // data) set to 25e9 float32s.
    let seed = &pth_seeds()[0];
    let mut b = seed.bytes.clone();
    let count_at = seed.fields.last().unwrap().at;
    Field::le(count_at, 8).write(&mut b, 25_000_000_000);
    assert_refused_small(
        "legacy pth",
        largest_allocation(|| pth::read(&b)),
        "claims 25000000000 elements",
    );
    // The zip seed with its storage entry's sizes set to 100 GB in the local and central headers.
    let zip = &pth_seeds()[1].bytes;
    let mut b = zip.clone();
    for at in find_all(zip, b"PK\x03\x04") {
        if zip[at + 30..].starts_with(b"archive/data/0") {
            Field::le(at + 18, 4).write(&mut b, u32::MAX as u64);
            Field::le(at + 22, 4).write(&mut b, u32::MAX as u64);
        }
    }
    for at in find_all(zip, b"PK\x01\x02") {
        if zip[at + 46..].starts_with(b"archive/data/0") {
            Field::le(at + 20, 4).write(&mut b, u32::MAX as u64);
            Field::le(at + 24, 4).write(&mut b, u32::MAX as u64);
        }
    }
    let (result, largest) = largest_allocation(|| pth::read(&b));
    assert!(result.is_err(), "a 4 GB entry in a 1 KB zip was read");
    assert!(
        largest <= SLACK,
        "allocated {largest} bytes: {:?}",
        result.err()
    );
}

#[test]
fn h5_dataspace_declaring_100_gb_is_refused_before_allocating() {
    // The kernel's dataspace (3, 3, 2, 4) turned into (3, 3, 2, 1.04e9): 100 GB of float32.
    let seed = &h5_seeds()[0];
    let mut b = seed.bytes.clone();
    let dims: Vec<u8> = [3u64, 3, 2, 4]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    let at = find_all(&b, &dims)[0];
    Field::le(at + 24, 8).write(&mut b, 1_388_888_889);
    assert_refused_small(
        "h5",
        largest_allocation(|| h5::read(&b)),
        "than the file holds",
    );
}

#[test]
fn png_ihdr_declaring_100_gb_is_refused_before_allocating() {
    for (w, h) in [(200_000u64, 125_000u64), (30_000, 30_000), (0x7fff_ffff, 1)] {
        let mut b = seed_file("image", "rgb.png");
        Field::be(16, 4).write(&mut b, w);
        Field::be(20, 4).write(&mut b, h);
        fix_png_crcs(&mut b);
        assert_refused_small(
            &format!("png {w}x{h}"),
            largest_allocation(|| image_io::load_bytes(&b, None)),
            &format!("{w}x{h}"),
        );
    }
}

#[test]
fn jpeg_sof_declaring_a_huge_image_is_refused_before_allocating() {
    // libjpeg stops at 65500x65500 (17 GB as RGBA); 30000x30000 passes the pixel limit, and is
    // refused because 1.8 KB cannot hold its 14 million 8x8 blocks.
    for (w, h) in [(65500u64, 65500u64), (30_000, 30_000), (65_000, 16)] {
        let seed = &image_seeds(&["baseline.jpg"], jpeg_fields)[0];
        let mut b = seed.bytes.clone();
        let sof = find_all(&b, &[0xFF, 0xC0])[0];
        Field::be(sof + 5, 2).write(&mut b, h);
        Field::be(sof + 7, 2).write(&mut b, w);
        assert_refused_small(
            &format!("jpeg {w}x{h}"),
            largest_allocation(|| image_io::load_bytes(&b, None)),
            &format!("{w}x{h}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Pickles built to exhaust the unpickler rather than to look like a checkpoint

#[test]
fn pickle_nesting_a_million_deep_is_an_error_not_a_stack_overflow() {
    // None wrapped in a 1-tuple a million times (TUPLE1 is one byte): the first pickle of a
    // legacy checkpoint, where the magic number belongs. Dropping such a value recursively
    // needs ~100 MB of stack; the test thread has 2 MB.
    let depth = 1_000_000;
    let mut b = b"\x80\x02N".to_vec();
    b.resize(b.len() + depth, 0x85);
    b.push(b'.');
    let started = Instant::now();
    reset(u64::MAX);
    let e = pth::read(&b).unwrap_err();
    let (largest, peak) = measured();
    assert!(e.to_string().contains("no magic number"), "{e}");
    assert!(
        started.elapsed() < CASE_TIMEOUT * 5,
        "{:?}",
        started.elapsed()
    );
    assert!(largest <= SLACK + WEIGHTS_FACTOR * b.len(), "{largest}");
    // Each one-byte TUPLE1 makes a container (a reference-counted vector: two allocations,
    // ~100 bytes): memory linear in the file, at that rate.
    assert!(
        peak <= SLACK + 128 * b.len(),
        "{peak} bytes live for {}",
        b.len()
    );
}

#[test]
fn pickle_dict_of_many_keys_parses_in_linear_time() {
    // {"k000000": None, ...} with 200,000 distinct keys set by one SETITEMS: replacing a
    // repeated key by scanning the items made this 2e10 comparisons.
    let n = 200_000;
    let mut b = b"\x80\x02}(".to_vec();
    for i in 0..n {
        let key = format!("k{i:06}");
        b.push(b'X');
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.extend_from_slice(key.as_bytes());
        b.push(b'N');
    }
    b.extend_from_slice(b"u.");
    let started = Instant::now();
    let e = pth::read(&b).unwrap_err();
    assert!(e.to_string().contains("no magic number"), "{e}");
    assert!(
        started.elapsed() < CASE_TIMEOUT,
        "{n} keys took {:?}",
        started.elapsed()
    );
}

#[test]
fn pth_storage_offset_near_usize_max_is_an_error_not_an_overflow() {
    // The legacy seed with the bias's storage offset (BININT1 72) replaced by the LONG1
    // 2^62 + 1, whose byte offset (x4) wraps a 64-bit usize.
    let seed = &pth_seeds()[0].bytes;
    let at = find_all(seed, b"QKH")[0] + 1;
    let mut b = seed[..at].to_vec();
    b.extend_from_slice(&[0x8a, 8]);
    b.extend_from_slice(&((1u64 << 62) + 1).to_le_bytes());
    b.extend_from_slice(&seed[at + 2..]);
    let e = pth::read(&b).unwrap_err();
    assert!(
        e.to_string()
            .contains("reads elements 4611686018427387905..4611686018427387909"),
        "{e}"
    );
}
