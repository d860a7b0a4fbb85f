//! Once-a-second samples of the server process (RSS, open descriptors, threads, from `/proc`) and of the traffic's counters, and their CSV.

use std::io::{self, Write};
use std::path::Path;

/// One second of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the traffic started.
    pub second: u64,
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
    /// Threads (`Threads`).
    pub threads: u64,
    /// Requests answered in this second.
    pub answered: u64,
    /// Errors in this second.
    pub errors: u64,
    /// Throttled (503) answers in this second.
    pub throttled: u64,
    /// The machine's 1-minute load average.
    pub load1: f64,
}

/// What `/proc` says of a process: (RSS in KiB, threads, open descriptors).
pub fn process(pid: u32) -> io::Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> io::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no {name} in /proc/{pid}/status")))
    };
    let rss = field("VmRSS:")?;
    let threads = field("Threads:")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok((rss, threads, fds))
}

/// The 1-minute load average (0 if unreadable).
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0.0)
}

pub const CSV_HEADER: &str = "second,rss_kib,fds,threads,answered,errors,throttled,load1";

pub fn write_csv(path: &Path, samples: &[Sample]) -> io::Result<()> {
    let mut out = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{CSV_HEADER}")?;
    for s in samples {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{:.2}",
            s.second, s.rss_kib, s.fds, s.threads, s.answered, s.errors, s.throttled, s.load1
        )?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_sampled() {
        let (rss, threads, fds) = process(std::process::id()).unwrap();
        assert!(rss > 0 && threads >= 1 && fds >= 3, "{rss} {threads} {fds}");
    }

    #[test]
    fn the_csv_has_a_header_and_a_line_per_sample() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        let s = Sample {
            second: 1,
            rss_kib: 2,
            fds: 3,
            threads: 4,
            answered: 5,
            errors: 0,
            throttled: 6,
            load1: 1.5,
        };
        write_csv(&path, &[s.clone(), Sample { second: 2, ..s }]).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            text,
            format!("{CSV_HEADER}\n1,2,3,4,5,0,6,1.50\n2,2,3,4,5,0,6,1.50\n")
        );
    }
}
