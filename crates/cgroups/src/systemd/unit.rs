//! linux.cgroupsPath as the systemd driver reads it: `slice:prefix:name`.

use std::path::PathBuf;

use crate::{Error, Result};

/// The unit prefix when the spec gives no cgroupsPath (runc uses "runc").
pub const DEFAULT_PREFIX: &str = "berth";

/// The transient unit a container gets, and where it hangs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPath {
    /// The parent slice, e.g. `system.slice` (`-.slice` for the root).
    pub slice: String,
    /// The unit: `<prefix>-<name>.scope`, or a slice the name names.
    pub unit: String,
}

fn invalid(message: String) -> Error {
    Error::Invalid {
        field: "linux.cgroupsPath".into(),
        message,
    }
}

impl UnitPath {
    /// Reads linux.cgroupsPath. An absent or empty path means
    /// `:berth:<id>`; an empty slice means `system.slice`, or `user.slice`
    /// for a container of the user's own systemd.
    pub fn parse(path: Option<&str>, id: &str, user: bool) -> Result<UnitPath> {
        let default_slice = if user { "user.slice" } else { "system.slice" };
        let (slice, prefix, name) = match path.filter(|p| !p.is_empty()) {
            None => ("", DEFAULT_PREFIX, id),
            Some(p) => {
                let parts: Vec<&str> = p.split(':').collect();
                let [slice, prefix, name] = parts[..] else {
                    return Err(invalid(format!(
                        "{p:?} is not of the form \"slice:prefix:name\" that the systemd cgroup driver takes"
                    )));
                };
                (slice, prefix, name)
            }
        };
        let slice = match slice {
            "" => default_slice.to_string(),
            "-" => "-.slice".to_string(),
            s => {
                expand_slice(s)?;
                s.to_string()
            }
        };
        if name.is_empty() {
            return Err(invalid(format!("{path:?} has an empty unit name")));
        }
        let unit = if name.ends_with(".slice") {
            expand_slice(name)?;
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        check_unit_name(&unit)?;
        Ok(UnitPath { slice, unit })
    }

    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }

    /// The unit's cgroup, relative to the root of the hierarchy systemd
    /// manages: a scope sits in its slice, a slice where its name puts it.
    pub fn cgroup(&self) -> Result<PathBuf> {
        if self.is_slice() {
            return expand_slice(&self.unit);
        }
        Ok(expand_slice(&self.slice)?.join(&self.unit))
    }
}

/// A slice's cgroup: `a-b-c.slice` is `a.slice/a-b.slice/a-b-c.slice`, and
/// `-.slice` the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = |why: &str| invalid(format!("slice {slice:?} {why}"));
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad("does not end in \".slice\""));
    };
    if stem == "-" {
        return Ok(PathBuf::new());
    }
    if stem.is_empty() {
        return Err(bad("has an empty name"));
    }
    if slice.contains('/') {
        return Err(bad(
            "contains \"/\" (a sub-slice is written with \"-\": a-b.slice)",
        ));
    }
    check_unit_name(slice)?;
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for component in stem.split('-') {
        if component.is_empty() {
            return Err(bad(
                "has an empty component (leading, trailing or double \"-\")",
            ));
        }
        prefix.push_str(component);
        path.push(format!("{prefix}.slice"));
        prefix.push('-');
    }
    Ok(path)
}

/// systemd's unit name alphabet and length, checked here so that a bad
/// name fails before any bus traffic, naming the spec field.
fn check_unit_name(unit: &str) -> Result<()> {
    let valid_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@');
    if unit.len() > 255 {
        return Err(invalid(format!(
            "unit name {unit:?} is longer than 255 bytes"
        )));
    }
    if let Some(c) = unit.chars().find(|c| !valid_char(*c)) {
        return Err(invalid(format!(
            "unit name {unit:?} contains {c:?}; systemd takes only ASCII letters, digits and \":-_.\\@\""
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Result<UnitPath> {
        UnitPath::parse(Some(path), "c1", false)
    }

    #[test]
    fn engines_paths() {
        let docker = parse("system.slice:docker:abc").unwrap();
        assert_eq!(docker.unit, "docker-abc.scope");
        assert_eq!(
            docker.cgroup().unwrap(),
            PathBuf::from("system.slice/docker-abc.scope")
        );
        let podman = parse("machine.slice:libpod:abc").unwrap();
        assert_eq!(
            podman.cgroup().unwrap(),
            PathBuf::from("machine.slice/libpod-abc.scope")
        );
        let kube = parse("kubepods-besteffort-pod1.slice:cri-containerd:abc").unwrap();
        assert_eq!(
            kube.cgroup().unwrap(),
            PathBuf::from("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope")
        );
    }

    #[test]
    fn defaults() {
        let p = UnitPath::parse(None, "c1", false).unwrap();
        assert_eq!(
            (p.slice.as_str(), p.unit.as_str()),
            ("system.slice", "berth-c1.scope")
        );
        let p = UnitPath::parse(Some(""), "c1", true).unwrap();
        assert_eq!(p.slice, "user.slice");
        let p = parse("::x").unwrap();
        assert_eq!(
            (p.slice.as_str(), p.unit.as_str()),
            ("system.slice", "x.scope")
        );
        assert_eq!(
            UnitPath::parse(Some(":p:x"), "c", true).unwrap().slice,
            "user.slice"
        );
    }

    #[test]
    fn root_slice() {
        for root in ["-", "-.slice"] {
            let p = parse(&format!("{root}:p:x")).unwrap();
            assert_eq!(p.slice, "-.slice");
            assert_eq!(p.cgroup().unwrap(), PathBuf::from("p-x.scope"));
        }
    }

    #[test]
    fn slice_units_live_where_their_name_says() {
        let p = parse("system.slice:ignored:a-b.slice").unwrap();
        assert!(p.is_slice());
        assert_eq!(p.cgroup().unwrap(), PathBuf::from("a.slice/a-b.slice"));
    }

    #[test]
    fn bad_forms_name_the_field() {
        for bad in [
            "a/b",
            "x:y",
            "a:b:c:d",
            "nota:p:x",
            "a/b.slice:p:x",
            "a--b.slice:p:x",
            "-a.slice:p:x",
            ".slice:p:x",
            "system.slice:p:",
            "system.slice:p:a b",
            "system.slice:p:a/b",
            "system.slice:p:x-.slice",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.to_string().starts_with("linux.cgroupsPath: "),
                "{bad}: {err}"
            );
        }
    }
}
