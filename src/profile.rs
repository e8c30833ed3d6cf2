//! GPU time per dispatch of one detection, and its summary per shader.

use std::collections::BTreeMap;
use std::fmt;

/// The GPU time of one dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTime {
    /// The layer or stage (e.g. `fpn.merge1.0`).
    pub label: String,
    /// The shader it ran (e.g. `conv`).
    pub shader: String,
    pub ms: f64,
    /// Floating-point operations of the dispatch, where known (0 otherwise).
    pub flops: u64,
    /// Bytes it reads and writes at least once, where known.
    pub bytes: u64,
}

/// Timestamps of every dispatch of one detection, in execution order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub steps: Vec<StepTime>,
}

/// Totals of one shader over a detection.
#[derive(Clone, Debug, PartialEq)]
pub struct ShaderTotal {
    pub shader: String,
    pub calls: usize,
    pub ms: f64,
    pub flops: u64,
    pub bytes: u64,
}

impl ShaderTotal {
    pub fn gflops(&self) -> f64 {
        self.flops as f64 / (self.ms.max(1e-9) * 1e6)
    }
    pub fn gbytes(&self) -> f64 {
        self.bytes as f64 / (self.ms.max(1e-9) * 1e6)
    }
}

impl Profile {
    pub fn total_ms(&self) -> f64 {
        self.steps.iter().map(|s| s.ms).sum()
    }

    /// Per shader, slowest first.
    pub fn by_shader(&self) -> Vec<ShaderTotal> {
        let mut map: BTreeMap<&str, (usize, f64, u64, u64)> = BTreeMap::new();
        for s in &self.steps {
            let e = map.entry(&s.shader).or_default();
            e.0 += 1;
            e.1 += s.ms;
            e.2 += s.flops;
            e.3 += s.bytes;
        }
        let mut out: Vec<ShaderTotal> = map
            .into_iter()
            .map(|(shader, (calls, ms, flops, bytes))| ShaderTotal {
                shader: shader.to_string(),
                calls,
                ms,
                flops,
                bytes,
            })
            .collect();
        out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        out
    }
}

/// User + system CPU time of this process in ms (Linux; `None` elsewhere). On a software
/// adapter such as lavapipe the "GPU" is this process's threads, and CPU time per detect is the
/// figure that other load on the machine disturbs least.
pub fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream configuration.
    Some(ticks * 10.0)
}

impl Profile {
    /// Floating-point operations of the whole detection (the network; post-processing is
    /// not counted).
    pub fn total_flops(&self) -> u64 {
        self.steps.iter().map(|s| s.flops).sum()
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:>6} {:>10} {:>10} {:>6} {:>9} {:>8}",
            "shader", "calls", "total ms", "ms/call", "share", "GFLOP/s", "GB/s"
        )?;
        let total = self.total_ms().max(1e-9);
        for s in self.by_shader() {
            let rate = |v: f64, known: bool| if known { format!("{v:.2}") } else { "-".into() };
            writeln!(
                f,
                "{:<14} {:>6} {:>10.3} {:>10.4} {:>5.1}% {:>9} {:>8}",
                s.shader,
                s.calls,
                s.ms,
                s.ms / s.calls as f64,
                100.0 * s.ms / total,
                rate(s.gflops(), s.flops > 0),
                rate(s.gbytes(), s.bytes > 0),
            )?;
        }
        write!(
            f,
            "{:<14} {:>6} {:>10.3} {:>10} {:>6} {:>9.2}",
            "all",
            self.steps.len(),
            total,
            "",
            "",
            self.total_flops() as f64 / (total * 1e6)
        )
    }
}
