//! Device cgroup rules as cgroup v1 holds them: a default (allow or
//! deny every device) and exceptions, each a device pattern with the
//! accesses it grants (or, in an allow-all cgroup, denies).
//!
//! Writing a spec's rules one by one would first deny everything, then
//! allow again: a running container would lose its devices for a moment on
//! every update. Instead the cgroup's state is read from devices.list, the
//! state the rules ask for is computed, and only the difference is written,
//! as runc does: nothing when they agree. devices.list cannot show the deny
//! exceptions of an allow-all cgroup, so from such a cgroup (a new one,
//! which starts as its parent) the default is always written first.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{Error, Result};

const READ: u8 = 1;
const WRITE: u8 = 2;
const MKNOD: u8 = 4;
const ALL: u8 = READ | WRITE | MKNOD;

/// The devices an exception covers; `None` numbers are `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pattern {
    block: bool,
    major: Option<u32>,
    minor: Option<u32>,
}

/// One line for devices.allow or devices.deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub allow: bool,
    /// `None` for every device (`a *:* rwm`).
    pattern: Option<Pattern>,
    access: u8,
}

impl Line {
    pub fn file(&self) -> &'static str {
        if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(p) = self.pattern else {
            return f.write_str("a *:* rwm");
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let kind = if p.block { 'b' } else { 'c' };
        write!(f, "{kind} {}:{} ", number(p.major), number(p.minor))?;
        for (bit, letter) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// A device cgroup's rules: the default and its exceptions.
#[derive(Debug, Clone, Default)]
pub struct DeviceState {
    default_allow: bool,
    exceptions: BTreeMap<Pattern, u8>,
    /// The exceptions' patterns in the order the rules first named them,
    /// the order their lines are written in: the runtime spec has rules
    /// applied in the listed order, and devices.list shows them so.
    order: Vec<Pattern>,
}

/// Two states are equal when they allow the same: order is no part of it.
impl PartialEq for DeviceState {
    fn eq(&self, other: &DeviceState) -> bool {
        self.default_allow == other.default_allow && self.exceptions == other.exceptions
    }
}

impl Eq for DeviceState {}

/// The accesses a rule names: r, w and m; other letters are dropped (as
/// runc drops them); no access at all means all three.
fn access_bits(access: Option<&str>) -> u8 {
    match access.filter(|a| !a.is_empty()) {
        None => ALL,
        Some(a) => a.chars().fold(0, |bits, c| {
            bits | match c {
                'r' => READ,
                'w' => WRITE,
                'm' => MKNOD,
                _ => 0,
            }
        }),
    }
}

impl DeviceState {
    /// The state `rules` ask for, applied in order to a cgroup that denies
    /// everything.
    pub fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<DeviceState> {
        let mut state = DeviceState::default();
        for (i, rule) in rules.iter().enumerate() {
            let invalid = |message: String| Error::Invalid {
                field: format!("linux.resources.devices[{i}]"),
                message,
            };
            let number = |n: Option<i64>| {
                n.filter(|n| *n >= 0)
                    .map(|n| {
                        u32::try_from(n).map_err(|_| invalid(format!("{n} is no device number")))
                    })
                    .transpose()
            };
            let block = match rule.typ() {
                None | Some(LinuxDeviceType::A) => {
                    state = DeviceState {
                        default_allow: rule.allow(),
                        ..DeviceState::default()
                    };
                    continue;
                }
                Some(LinuxDeviceType::B) => true,
                Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => false,
                Some(other) => {
                    return Err(invalid(format!(
                        "type {:?} is not a device cgroup type (a, b or c)",
                        other.as_str()
                    )))
                }
            };
            let pattern = Pattern {
                block,
                major: number(rule.major())?,
                minor: number(rule.minor())?,
            };
            state
                .apply(rule.allow(), pattern, access_bits(rule.access().as_deref()))
                .map_err(invalid)?;
        }
        Ok(state)
    }

    /// The state devices.list shows: `a *:* rwm` for an allow-all cgroup,
    /// else the allowed exceptions.
    pub fn from_list(list: &str) -> std::result::Result<DeviceState, String> {
        let mut state = DeviceState::default();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || format!("devices.list line {line:?}");
            let fields: Vec<&str> = line.split([' ', ':']).collect();
            let [kind, major, minor, access] = fields[..] else {
                return Err(bad());
            };
            let block = match kind {
                "a" => {
                    state = DeviceState {
                        default_allow: true,
                        ..DeviceState::default()
                    };
                    continue;
                }
                "b" => true,
                "c" => false,
                _ => return Err(bad()),
            };
            let number = |n: &str| match n {
                "*" => Ok(None),
                n => n.parse().map(Some).map_err(|_| bad()),
            };
            let pattern = Pattern {
                block,
                major: number(major)?,
                minor: number(minor)?,
            };
            state.apply(true, pattern, access_bits(Some(access)))?;
        }
        Ok(state)
    }

    /// One allow or deny rule for `pattern`, as the kernel takes it: a rule
    /// of the default's kind removes accesses from the exception of exactly
    /// that pattern, the other kind adds them.
    fn apply(
        &mut self,
        allow: bool,
        pattern: Pattern,
        access: u8,
    ) -> std::result::Result<(), String> {
        if access == 0 {
            return Ok(());
        }
        if allow != self.default_allow {
            *self.exceptions.entry(pattern).or_insert(0) |= access;
            if !self.order.contains(&pattern) {
                self.order.push(pattern);
            }
            return Ok(());
        }
        // The kernel only takes accesses off an exception of the same
        // pattern; a wider one (`c 1:* rw`, say) would still grant them.
        let wider = [
            Pattern {
                major: None,
                ..pattern
            },
            Pattern {
                minor: None,
                ..pattern
            },
            Pattern {
                major: None,
                minor: None,
                ..pattern
            },
        ];
        if let Some((wide, _)) = wider
            .iter()
            .filter(|w| **w != pattern)
            .filter_map(|w| Some((w, self.exceptions.get(w)?)))
            .find(|(_, bits)| *bits & access != 0)
        {
            let line = Line {
                allow,
                pattern: Some(pattern),
                access,
            };
            let wide = Line {
                allow: !allow,
                pattern: Some(*wide),
                access: self.exceptions[wide],
            };
            return Err(format!(
                "\"{line}\" cannot take accesses from the wider rule \"{wide}\" in a cgroup v1 device cgroup"
            ));
        }
        if let Some(bits) = self.exceptions.get_mut(&pattern) {
            *bits &= !access;
            if *bits == 0 {
                self.exceptions.remove(&pattern);
            }
        }
        Ok(())
    }

    /// The lines that take a cgroup in state `self` to `target`: the new
    /// default if it changes (or cannot be known), then what each exception
    /// loses, then what each gains.
    pub fn transition(&self, target: &DeviceState) -> Vec<Line> {
        let mut lines = Vec::new();
        let empty = BTreeMap::new();
        let old = if self.default_allow || self.default_allow != target.default_allow {
            lines.push(Line {
                allow: target.default_allow,
                pattern: None,
                access: ALL,
            });
            &empty
        } else {
            &self.exceptions
        };
        for (pattern, bits) in old {
            let dropped = bits & !target.exceptions.get(pattern).copied().unwrap_or(0);
            if dropped != 0 {
                lines.push(Line {
                    allow: target.default_allow,
                    pattern: Some(*pattern),
                    access: dropped,
                });
            }
        }
        for (pattern, bits) in target.ordered() {
            let gained = bits & !old.get(pattern).copied().unwrap_or(0);
            if gained != 0 {
                lines.push(Line {
                    allow: !target.default_allow,
                    pattern: Some(*pattern),
                    access: gained,
                });
            }
        }
        lines
    }

    /// The state as a rule list in its simplest form: the default, then
    /// each exception (what the cgroup v2 device program is built from, as
    /// runc builds it).
    pub fn to_rules(&self) -> Vec<LinuxDeviceCgroup> {
        let default = Line {
            allow: self.default_allow,
            pattern: None,
            access: ALL,
        };
        let exceptions = self.ordered().map(|(pattern, access)| Line {
            allow: !self.default_allow,
            pattern: Some(*pattern),
            access: *access,
        });
        std::iter::once(default)
            .chain(exceptions)
            .map(|line| {
                let mut rule = LinuxDeviceCgroup::default();
                rule.set_allow(line.allow);
                if let Some(p) = line.pattern {
                    rule.set_typ(Some(if p.block {
                        LinuxDeviceType::B
                    } else {
                        LinuxDeviceType::C
                    }));
                    rule.set_major(p.major.map(i64::from));
                    rule.set_minor(p.minor.map(i64::from));
                }
                let text = line.to_string();
                rule.set_access(Some(text.rsplit(' ').next().unwrap_or("rwm").to_string()));
                rule
            })
            .collect()
    }

    /// The exceptions in the order the rules named them.
    fn ordered(&self) -> impl Iterator<Item = (&Pattern, &u8)> {
        self.order
            .iter()
            .filter_map(|p| self.exceptions.get_key_value(p))
    }

    /// Whether `other` is this state, as far as devices.list can tell
    /// (it cannot show an allow-all cgroup's exceptions).
    pub fn matches(&self, other: &DeviceState) -> bool {
        if self.default_allow {
            other.default_allow
        } else {
            self == other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    fn lines(from: &DeviceState, to: &DeviceState) -> Vec<String> {
        from.transition(to)
            .iter()
            .map(|l| format!("{} {l}", l.file()))
            .collect()
    }

    const CONTAINER: &str = r#"[{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
        {"allow":true,"type":"c","major":136,"access":"rwm"},
        {"allow":true,"type":"c","access":"m"}]"#;

    #[test]
    fn a_new_cgroup_is_reset_then_allowed_what_the_rules_allow_in_their_order() {
        let parent = DeviceState::from_list("a *:* rwm\n").unwrap();
        let target = DeviceState::from_rules(&rules(CONTAINER)).unwrap();
        assert_eq!(
            lines(&parent, &target),
            [
                "devices.deny a *:* rwm",
                "devices.allow c 1:3 rwm",
                "devices.allow c 136:* rwm",
                "devices.allow c *:* m"
            ]
        );
    }

    #[test]
    fn the_same_rules_again_write_nothing() {
        let list = "c 1:3 rwm\nc 136:* rwm\nc *:* m\n";
        let current = DeviceState::from_list(list).unwrap();
        let target = DeviceState::from_rules(&rules(CONTAINER)).unwrap();
        assert!(current.matches(&target));
        assert!(lines(&current, &target).is_empty());
    }

    #[test]
    fn an_update_writes_only_what_changes() {
        let current = DeviceState::from_list("c 1:3 rwm\nc 136:* rwm\nc *:* m\n").unwrap();
        let target = DeviceState::from_rules(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},
                {"allow":true,"type":"b","major":8,"minor":0,"access":"r"},
                {"allow":true,"type":"c","access":"m"}]"#,
        ))
        .unwrap();
        assert_eq!(
            lines(&current, &target),
            [
                "devices.deny c 1:3 m",
                "devices.deny c 136:* rwm",
                "devices.allow b 8:0 r"
            ]
        );
    }

    #[test]
    fn letters_other_than_r_w_m_are_dropped() {
        let target = DeviceState::from_rules(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwxq"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"x"}]"#,
        ))
        .unwrap();
        assert_eq!(
            lines(&DeviceState::default(), &target),
            ["devices.allow c 1:3 rw"]
        );
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let target = DeviceState::from_rules(&rules(
            r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"w"}]"#,
        ))
        .unwrap();
        assert_eq!(DeviceState::from_list("c 1:5 rm\n").unwrap(), target);
    }

    #[test]
    fn an_allow_all_cgroup_keeps_its_deny_rules_apart() {
        let target = DeviceState::from_rules(&rules(
            r#"[{"allow":true,"access":"rwm"},
                {"allow":false,"type":"c","major":10,"minor":229,"access":"rwm"}]"#,
        ))
        .unwrap();
        // devices.list of such a cgroup shows only `a *:* rwm`: the deny
        // rules are written again after the default.
        let current = DeviceState::from_list("a *:* rwm\n").unwrap();
        assert!(current.matches(&target));
        assert_eq!(
            lines(&current, &target),
            ["devices.allow a *:* rwm", "devices.deny c 10:229 rwm"]
        );
    }

    #[test]
    fn a_hole_in_a_wider_allow_rule_is_refused() {
        let err = DeviceState::from_rules(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("linux.resources.devices[2]"), "{err}");
        assert!(err.contains("c 1:* rwm"), "{err}");
    }

    #[test]
    fn the_simplest_form_keeps_the_meaning() {
        let state = DeviceState::from_rules(&rules(
            r#"[{"allow":true,"type":"c","major":4,"minor":1,"access":"rwm"},
                {"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwxm"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"m"}]"#,
        ))
        .unwrap();
        assert_eq!(
            serde_json::to_value(state.to_rules()).unwrap(),
            serde_json::json!([
                {"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}
            ])
        );
    }

    #[test]
    fn a_fifo_is_no_device_cgroup_type() {
        let err = DeviceState::from_rules(&rules(r#"[{"allow":true,"type":"p","access":"rwm"}]"#))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("linux.resources.devices[0]"), "{err}");
    }
}
