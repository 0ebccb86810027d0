//! This process's resident memory and CPU time, read from `/proc/self/stat`
//! (procfs without its default features: no extra C library, no chrono).
//!
//! Invariant: a platform without `/proc` answers an error, never made-up zeros.

use serde::Serialize;

/// Why the figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// `/proc/self/stat` is missing or unreadable.
    #[error("cannot read /proc/self/stat: {0}")]
    Proc(#[from] procfs::ProcError),
}

/// Resident memory and CPU time of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessFigures {
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    /// User and system CPU time since the process started, in seconds.
    pub cpu_seconds: f64,
}

/// Reads them now.
pub fn read() -> Result<ProcessFigures, ProcessError> {
    let stat = procfs::process::Process::myself()?.stat()?;
    let ticks = procfs::ticks_per_second().max(1) as f64;
    Ok(ProcessFigures {
        rss_bytes: stat.rss.saturating_mul(procfs::page_size()),
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_memory() {
        let p = super::read().unwrap();
        assert!(p.rss_bytes > 1 << 20, "{p:?}");
        assert!(p.cpu_seconds >= 0.0);
    }
}
