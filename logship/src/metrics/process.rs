//! The process metrics every Prometheus client exports, read from `/proc/self` at scrape time
//! (Linux only; elsewhere they are left out).
//!
//! - `process_resident_memory_bytes`: `VmRSS` of `/proc/self/status`;
//! - `process_virtual_memory_bytes`: `VmSize`;
//! - `process_cpu_seconds_total`: user + system time (`utime` + `stime` of `/proc/self/stat`,
//!   in clock ticks of 1/100 s — `USER_HZ` is 100 on every Linux ABI);
//! - `process_start_time_seconds`: `btime` of `/proc/stat` + `starttime` of `/proc/self/stat`;
//! - `process_open_fds`: entries of `/proc/self/fd`.

/// Clock ticks per second of the `/proc` time fields (`USER_HZ`).
const USER_HZ: f64 = 100.0;

/// One reading of the process metrics; a field is `None` when it could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads `/proc` now.
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let sys_stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields = stat_fields(&stat);
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
        // Field numbers as in proc(5), 1-based; `fields` starts at field 3 (state).
        let utime = field(14 - 3);
        let stime = field(15 - 3);
        let starttime = field(22 - 3);
        let btime = sys_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        ProcessStats {
            resident_memory_bytes: status_kib(&status, "VmRSS:").map(|k| k * 1024),
            virtual_memory_bytes: status_kib(&status, "VmSize:").map(|k| k * 1024),
            cpu_seconds: utime.zip(stime).map(|(u, s)| (u + s) as f64 / USER_HZ),
            start_time_seconds: btime
                .zip(starttime)
                .map(|(b, s)| b as f64 + s as f64 / USER_HZ),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
        }
    }
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses, so the split starts after its last `)`).
fn stat_fields(stat: &str) -> Vec<&str> {
    match stat.rfind(')') {
        Some(i) => stat[i + 1..].split_whitespace().collect(),
        None => Vec::new(),
    }
}

/// A `Key:   123 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_stat_line_even_with_odd_command_names() {
        let line =
            "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 1000 200";
        let f = stat_fields(line);
        assert_eq!(f[0], "S");
        assert_eq!(f[14 - 3], "250");
        assert_eq!(f[15 - 3], "50");
        assert_eq!(f[22 - 3], "12345");
        assert_eq!(
            status_kib("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.resident_memory_bytes.unwrap() > 0);
        assert!(p.cpu_seconds.is_some());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = p.start_time_seconds.unwrap();
        // Started before now, and not before 2020.
        assert!(start <= now + 1.0 && start > 1_577_836_800.0, "{start}");
        assert!(p.open_fds.unwrap() >= 3);
    }
}
