//! CDI device names: `vendor.com/class=name`, as the CDI spec defines them.

use crate::{Error, Result};

/// A fully qualified CDI device name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub vendor: String,
    pub class: String,
    pub name: String,
}

impl QualifiedName {
    /// Parses `vendor/class=name`; `what` says where it came from, for the
    /// error.
    pub fn parse(text: &str, what: &str) -> Result<QualifiedName> {
        let bad = |why: &str| {
            Error::spec(
                what,
                format!("{text:?} is not a CDI device name (vendor.com/class=name): {why}"),
            )
        };
        let (kind, name) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (vendor, class) = parse_kind(kind).map_err(|why| bad(&why))?;
        validate_device_name(name).map_err(|why| bad(&why))?;
        Ok(QualifiedName {
            vendor,
            class,
            name: name.to_string(),
        })
    }

    pub fn kind(&self) -> String {
        format!("{}/{}", self.vendor, self.class)
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}={}", self.vendor, self.class, self.name)
    }
}

/// Splits a spec's `kind` (`vendor.com/class`) and checks both parts.
pub fn parse_kind(kind: &str) -> std::result::Result<(String, String), String> {
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| format!("kind {kind:?} has no '/' between vendor and class"))?;
    validate_vendor(vendor)?;
    validate_class(class)?;
    Ok((vendor.to_string(), class.to_string()))
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A DNS-like vendor: starts with a letter, ends alphanumeric, with
/// letters, digits, '-', '_' and '.' between.
fn validate_vendor(vendor: &str) -> std::result::Result<(), String> {
    check_segment(
        "vendor",
        vendor,
        |c| c.is_ascii_alphabetic(),
        &['-', '_', '.'],
    )
}

/// The class: starts with a letter, ends alphanumeric, '-', '_' and (since
/// CDI 0.6) '.' between; at most 63 characters.
fn validate_class(class: &str) -> std::result::Result<(), String> {
    if class.len() > 63 {
        return Err(format!("class {class:?} is longer than 63 characters"));
    }
    check_segment(
        "class",
        class,
        |c| c.is_ascii_alphabetic(),
        &['-', '_', '.'],
    )
}

/// A device name: alphanumeric at both ends (a digit first is allowed since
/// CDI 0.5), '-', '_', '.' and ':' between.
pub fn validate_device_name(name: &str) -> std::result::Result<(), String> {
    check_segment("name", name, is_alnum, &['-', '_', '.', ':'])
}

fn check_segment(
    what: &str,
    s: &str,
    first_ok: impl Fn(char) -> bool,
    inner: &[char],
) -> std::result::Result<(), String> {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return Err(format!("empty {what}"));
    };
    if !first_ok(first) {
        return Err(format!("{what} {s:?} starts with {first:?}"));
    }
    if !is_alnum(last) {
        return Err(format!("{what} {s:?} ends with {last:?}"));
    }
    if let Some(c) = s.chars().find(|&c| !is_alnum(c) && !inner.contains(&c)) {
        return Err(format!("{what} {s:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualified_names() {
        let n = QualifiedName::parse("nvidia.com/gpu=0", "x").unwrap();
        assert_eq!(
            (n.vendor.as_str(), n.class.as_str(), n.name.as_str()),
            ("nvidia.com", "gpu", "0")
        );
        assert_eq!(n.to_string(), "nvidia.com/gpu=0");
        QualifiedName::parse("vendor.com/class=GPU-1a2b:3", "x").unwrap();
        QualifiedName::parse("foo.bar.baz/foo-bar123.B_az=all", "x").unwrap();
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "nvidia.com/gpu",
            "gpu=0",
            "nvidia.com/gpu/x=0",
            "1vendor.com/gpu=0",
            "vendor.com/gpu=-0",
            "vendor.com/gpu=a b",
            "vendor.com/=a",
            "vendor.com-/gpu=a",
        ] {
            assert!(QualifiedName::parse(bad, "x").is_err(), "{bad}");
        }
    }
}
