//! A container's status, derived from what the system shows rather than
//! trusted from the state file: the init's pid together with its start time
//! (so a reused pid never looks like our container), the exec fifo, and the
//! cgroup freezer.

use std::fmt;
use std::fs;
use std::io::Read;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What /proc/<pid>/stat says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The one-letter state: R, S, D, Z, T, ...
    pub state: char,
    /// Start time in clock ticks after boot (field 22).
    pub start_time: u64,
}

impl ProcStat {
    pub fn read(pid: i32) -> Option<ProcStat> {
        // procfs hands the whole line (~300 bytes, under 1.2 KiB at most)
        // to one read; read_to_string would first fstat and lseek the file
        // and then read until EOF.
        let mut buf = [0u8; 4096];
        let n = fs::File::open(format!("/proc/{pid}/stat"))
            .ok()?
            .read(&mut buf)
            .ok()?;
        Self::parse(std::str::from_utf8(&buf[..n]).ok()?)
    }

    /// Parses a stat line; the command name may hold spaces and parentheses,
    /// so fields are counted from its last ')'.
    pub fn parse(line: &str) -> Option<ProcStat> {
        let rest = &line[line.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        // After the state come fields 4..=21; the start time is field 22.
        let start_time = fields.nth(18)?.parse().ok()?;
        Some(ProcStat { state, start_time })
    }
}

/// Whether `pid` is still the process that started at `start_time` and has
/// not exited (a zombie has).
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match ProcStat::read(pid) {
        Some(stat) => stat.start_time == start_time && !matches!(stat.state, 'Z' | 'X' | 'x'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let line =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                state: 'S',
                start_time: 987654
            })
        );
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let stat = ProcStat::read(me).unwrap();
        assert!(is_alive(me, stat.start_time));
        assert!(!is_alive(me, stat.start_time + 1));
        assert!(!is_alive(0, 0));
    }
}
