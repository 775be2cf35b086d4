//! berth's error type. It is serialisable, so that the init process can hand
//! its failure to the parent as a value (what failed, on which spec field or
//! path, and the errno), not as text to parse.

use std::fmt::Display;
use std::io;

use serde::{Deserialize, Serialize};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// A system call or file operation failed; `context` says what was being
    /// done to which spec field or path.
    #[error("{context}: {}", errno_text(*errno))]
    Os { context: String, errno: i32 },
    /// The bundle asks for something invalid or unsupported.
    #[error("{field}: {message}")]
    Spec { field: String, message: String },
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: String },
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    /// The operation does not apply to a container in this state.
    #[error("container {id:?} is {status}: {message}")]
    WrongState {
        id: String,
        status: String,
        message: String,
    },
    /// Any other failure, already worded for the user.
    #[error("{0}")]
    Message(String),
}

impl Error {
    pub fn spec(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Spec {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn os(context: impl Into<String>, errno: i32) -> Error {
        Error::Os {
            context: context.into(),
            errno,
        }
    }

    /// The errno behind the failure, if a system call failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Puts `outer` (a spec field, a step) in front of the message.
    pub fn within(self, outer: impl Display) -> Error {
        match self {
            Error::Os { context, errno } => Error::Os {
                context: format!("{outer}: {context}"),
                errno,
            },
            Error::Spec { field, message } => Error::Spec {
                field: format!("{outer}: {field}"),
                message,
            },
            other => Error::Message(format!("{outer}: {other}")),
        }
    }
}

/// The text of an errno, worded as runc and Go word it ("no such file or
/// directory"): engines match on these words to pick exit codes.
pub fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {errno}"),
    }
}

/// Adds context to the errors of system calls and of other crates.
pub trait Context<T> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T> Context<T> for Result<T, io::Error> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| match e.raw_os_error() {
            Some(errno) => Error::os(context().to_string(), errno),
            None => Error::Message(format!("{}: {e}", context())),
        })
    }
}

impl<T> Context<T> for Result<T, rustix::io::Errno> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::os(context().to_string(), e.raw_os_error()))
    }
}

impl<T> Context<T> for Result<T, pathrs::error::Error> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| match e.kind() {
            pathrs::error::ErrorKind::OsError(Some(errno)) => {
                Error::os(context().to_string(), errno)
            }
            _ => Error::Message(format!("{}: {e}", context())),
        })
    }
}

impl<T> Context<T> for Result<T, berth_cgroups::Error> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Message(format!("{}: {e}", context())))
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.within(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_worded_like_runc() {
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
        assert_eq!(errno_text(libc::EPERM), "operation not permitted");
    }

    #[test]
    fn context_nests_outermost_first() {
        let inner: Result<()> = Err(Error::os("mount proc", libc::EPERM));
        let err = inner.ctx(|| "mounts[3]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "mounts[3]: mount proc: operation not permitted"
        );
        assert_eq!(err.errno(), Some(libc::EPERM));
    }

    #[test]
    fn errors_survive_the_trip_between_processes() {
        let err = Error::spec("process.args", "must not be empty");
        let json = serde_json::to_string(&err).unwrap();
        assert_eq!(serde_json::from_str::<Error>(&json).unwrap(), err);
    }
}
