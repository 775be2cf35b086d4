//! Container ids: they name a directory under the state root, so only a safe
//! alphabet is accepted.

use crate::{Error, Result};

const MAX_LEN: usize = 1024;

/// Accepts ids made of letters, digits and `_ + - .` (runc's alphabet), that
/// are not `.` or `..` and at most 1024 bytes long.
pub fn validate(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_LEN {
        "it is longer than 1024 bytes"
    } else if id == "." || id == ".." {
        "it is a relative path component"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        "it may contain only letters, digits, '_', '+', '-' and '.'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidId {
        id: id.to_string(),
        reason: reason.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_engine_style_ids() {
        for id in ["a", "web_1", "3f2a-bc.d+e", "0123456789abcdef"] {
            validate(id).unwrap();
        }
    }

    #[test]
    fn refuses_paths_and_odd_ids() {
        for id in [
            "",
            ".",
            "..",
            "../x",
            "/",
            "a/b",
            "a b",
            "é",
            &"x".repeat(1025),
        ] {
            assert!(validate(id).is_err(), "{id:?} was accepted");
        }
    }
}
