//! Signal names as `kill` takes them: TERM, SIGTERM, sigterm, 15, RTMIN+2.

use crate::{Error, Result};

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The kernel's real-time signal range (glibc reserves the first few, but
/// the kernel's numbers are what a container's process sees).
const RTMIN: i32 = 32;
const RTMAX: i32 = 64;

/// Parses a signal name or number; 0 checks that the process exists,
/// as kill(2)'s does.
pub fn parse(text: &str) -> Result<i32> {
    let invalid = || Error::Message(format!("invalid signal {text:?}"));
    if let Ok(n) = text.parse::<i32>() {
        return if (0..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(invalid())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(n);
    }
    let realtime = |base: i32, rest: &str, sign: i32| -> Result<i32> {
        let offset: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| invalid())?
        };
        let n = base + sign * offset;
        if (RTMIN..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(invalid())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return realtime(RTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return realtime(RTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    Err(invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_sig_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("0").unwrap(), 0, "signal 0: an existence check");
        assert_eq!(parse("RTMIN+3").unwrap(), 35);
        assert_eq!(parse("SIGRTMAX-1").unwrap(), 63);
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in ["", "65", "-1", "NOPE", "RTMIN+40", "SIG"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
