//! `exec --cgroup`: the existing sub-cgroups of a container's cgroup that
//! an exec'd process joins, as runc takes them.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// Sub-cgroups below the container's cgroup: one `path` for every
/// hierarchy, or per-controller paths (`ctrl1,ctrl2:path`, repeatable) for
/// the v1 hierarchies of those controllers, the others staying in the
/// container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubCgroup {
    all: Option<PathBuf>,
    by_controller: Vec<(String, PathBuf)>,
}

fn invalid(message: String) -> Error {
    Error::Invalid {
        field: "--cgroup".into(),
        message,
    }
}

/// `path` relative to the container's cgroup: `/` is the cgroup itself,
/// and nothing may climb out of it.
fn below(arg: &str, path: &str) -> Result<PathBuf> {
    let path = Path::new(path.trim_start_matches('/'));
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(invalid(format!(
            "{arg:?}: bad sub cgroup path (it must stay below the container's cgroup)"
        )));
    }
    Ok(path.to_path_buf())
}

impl SubCgroup {
    /// Parses the --cgroup arguments: one bare `path`, or any number of
    /// `controller[,controller...]:path`, each controller named once.
    pub fn parse(args: &[String]) -> Result<SubCgroup> {
        let mut sub = SubCgroup::default();
        for arg in args {
            let Some((controllers, path)) = arg.split_once(':') else {
                if args.len() != 1 {
                    return Err(invalid(format!(
                        "{arg:?}: a path without a <controller>: prefix must be the only --cgroup"
                    )));
                }
                sub.all = Some(below(arg, arg)?);
                continue;
            };
            let path = below(arg, path)?;
            for controller in controllers.split(',') {
                if controller.is_empty() {
                    return Err(invalid(format!("{arg:?}: an empty <controller> prefix")));
                }
                if sub.by_controller.iter().any(|(c, _)| c == controller) {
                    return Err(invalid(format!(
                        "controller {controller} is named more than once"
                    )));
                }
                sub.by_controller
                    .push((controller.to_string(), path.clone()));
            }
        }
        Ok(sub)
    }

    /// Whether the process stays in the container's cgroup itself.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.by_controller.is_empty()
    }

    /// The directory below `dir` for a hierarchy holding `controllers`
    /// (none: a cgroup2 hierarchy).
    pub(crate) fn dir_in(&self, controllers: &[String], dir: &Path) -> Result<PathBuf> {
        if let Some(path) = &self.all {
            return Ok(dir.join(path));
        }
        let mut chosen: Option<&PathBuf> = None;
        for (controller, path) in &self.by_controller {
            if !controllers.contains(controller) {
                continue;
            }
            if chosen.is_some_and(|c| c != path) {
                return Err(invalid(format!(
                    "controllers {} share one hierarchy but are given different paths",
                    controllers.join(",")
                )));
            }
            chosen = Some(path);
        }
        Ok(chosen.map_or_else(|| dir.to_path_buf(), |p| dir.join(p)))
    }

    /// Refuses a controller no hierarchy of the container has (`known`: the
    /// controllers of each v1 hierarchy), and per-controller paths where
    /// there are no v1 hierarchies.
    pub(crate) fn check_controllers(&self, known: &[&[String]]) -> Result<()> {
        for (controller, _) in &self.by_controller {
            if known.is_empty() {
                return Err(invalid(format!(
                    "{controller}: on cgroup v2 --cgroup takes a path without a <controller>: prefix"
                )));
            }
            if !known.iter().any(|k| k.contains(controller)) {
                return Err(invalid(format!(
                    "unknown controller {controller} (the container's hierarchies have {})",
                    known
                        .iter()
                        .map(|k| k.join(","))
                        .collect::<Vec<_>>()
                        .join(" ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<SubCgroup> {
        SubCgroup::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    fn controllers(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn one_path_for_every_hierarchy() {
        let sub = parse(&["/a/b"]).unwrap();
        let dir = Path::new("/cg/ct");
        assert_eq!(
            sub.dir_in(&controllers(&["memory"]), dir).unwrap(),
            Path::new("/cg/ct/a/b")
        );
        assert_eq!(sub.dir_in(&[], dir).unwrap(), Path::new("/cg/ct/a/b"));
        assert_eq!(
            parse(&["/"]).unwrap().dir_in(&[], dir).unwrap(),
            Path::new("/cg/ct")
        );
    }

    #[test]
    fn per_controller_paths_leave_other_hierarchies() {
        let sub = parse(&["memory:submem", "cpu,cpuacct:subcpu"]).unwrap();
        let dir = Path::new("/cg/ct");
        let cpu = controllers(&["cpu", "cpuacct"]);
        assert_eq!(sub.dir_in(&cpu, dir).unwrap(), Path::new("/cg/ct/subcpu"));
        assert_eq!(
            sub.dir_in(&controllers(&["memory"]), dir).unwrap(),
            Path::new("/cg/ct/submem")
        );
        assert_eq!(
            sub.dir_in(&controllers(&["pids"]), dir).unwrap(),
            Path::new("/cg/ct")
        );
        let memory = controllers(&["memory"]);
        let pids = controllers(&["pids"]);
        sub.check_controllers(&[&cpu, &memory, &pids]).unwrap();
    }

    #[test]
    fn bad_arguments_are_refused() {
        for args in [
            &[".."][..],
            &["a/../../b"],
            &["cpu:.."],
            &[":x"],
            &["cpu,:x"],
            &["a", "b"],
            &["cpu:a", "cpu:b"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
        let msg = parse(&[".."]).unwrap_err().to_string();
        assert!(msg.contains("bad sub cgroup path"), "{msg}");
    }

    #[test]
    fn unknown_controllers_are_refused() {
        let sub = parse(&["whaaat:/"]).unwrap();
        let memory = controllers(&["memory"]);
        let msg = sub.check_controllers(&[&memory]).unwrap_err().to_string();
        assert!(msg.contains("unknown controller whaaat"), "{msg}");
        assert!(parse(&["memory:x"])
            .unwrap()
            .check_controllers(&[])
            .is_err());
    }

    #[test]
    fn one_hierarchy_two_paths_is_refused() {
        let sub = parse(&["cpu:a", "cpuacct:b"]).unwrap();
        assert!(sub
            .dir_in(&controllers(&["cpu", "cpuacct"]), Path::new("/cg"))
            .is_err());
    }
}
