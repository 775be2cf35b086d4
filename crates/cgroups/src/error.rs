use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cgroup failure, naming the file or spec field it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cgroup layout: {message}")]
    Detect { message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A resource this host (or this cgroup version) cannot enforce.
    #[error("{field}: {message}")]
    Unsupported { field: String, message: String },
    /// A systemd unit that systemd would not start, set or stop.
    #[error("systemd unit {unit}: {message}")]
    Systemd { unit: String, message: String },
    /// A value in the spec that is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl Error {
    pub fn io(path: &std::path::Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The errno behind an I/O failure, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Write { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
