//! Finding the program of process.args[0] and executing it. The messages
//! follow runc's wording, which engines match to choose exit codes 126/127.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves args[0] as execvp would: a name with a slash is taken as is,
/// otherwise it is looked up in the PATH of the process's environment.
pub fn find(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        return check(Path::new(arg0), arg0);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if check(&candidate, arg0).is_ok() {
            return Ok(candidate);
        }
    }
    Err(Error::Message(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

fn check(path: &Path, arg0: &str) -> Result<PathBuf> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::os(
            format!("exec: {arg0:?}: stat {}", path.display()),
            e.raw_os_error().unwrap_or(libc::ENOENT),
        )
    })?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::os(format!("exec: {arg0:?}"), libc::EACCES));
    }
    Ok(path.to_path_buf())
}

fn cstring(s: &[u8], what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Message(format!("{what}: contains a NUL byte")))
}

/// The argv and envp arrays for execve, prepared before the process is
/// released so that nothing is allocated between the release and the exec.
pub struct Program {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

impl Program {
    pub fn new(path: &Path, args: &[String], env: &[String]) -> Result<Program> {
        Ok(Program {
            path: cstring(path.as_os_str().as_bytes(), "process.args[0]")?,
            args: args
                .iter()
                .map(|a| cstring(a.as_bytes(), "process.args"))
                .collect::<Result<_>>()?,
            env: env
                .iter()
                .map(|e| cstring(e.as_bytes(), "process.env"))
                .collect::<Result<_>>()?,
        })
    }

    /// Replaces this process; returns only if execve fails.
    pub fn exec(&self) -> Error {
        let mut argv: Vec<*const libc::c_char> = self.args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: path, argv and envp are NUL-terminated C strings and
        // NULL-terminated arrays that outlive the call.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        Error::os(format!("exec {}", self.path.to_string_lossy()), errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_looked_up_in_the_process_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        let found = find("sh", &env).unwrap();
        assert!(found.ends_with("sh"), "{}", found.display());
    }

    #[test]
    fn missing_programs_are_worded_like_runc() {
        let err = find("no-such-program-here", &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "exec: \"no-such-program-here\": executable file not found in $PATH"
        );
        let err = find("/nonexistent", &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "exec: \"/nonexistent\": stat /nonexistent: no such file or directory"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let err = find(plain.to_str().unwrap(), &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("exec: {:?}: permission denied", plain.to_str().unwrap())
        );
    }
}
