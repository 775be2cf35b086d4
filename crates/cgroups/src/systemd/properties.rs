//! linux.resources and `org.systemd.property.*` annotations as systemd unit
//! properties, converted as runc 1.3 converts them.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::wire::{Type, Value};
use crate::convert;
use crate::{Error, Result};

/// One unit property: its name and value.
pub type Property = (String, Value);

/// systemd's "infinity" for limits and times.
const INFINITY: u64 = u64::MAX;
/// The kernel's default cpu.max period.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// The systemd version a property needs, where it is newer than the oldest
/// systemd the driver otherwise supports.
pub fn min_version(name: &str) -> Option<u32> {
    match name {
        "CPUQuotaPeriodUSec" => Some(242),
        "AllowedCPUs" | "AllowedMemoryNodes" => Some(244),
        _ => None,
    }
}

fn prop(name: &str, value: Value) -> Property {
    (name.to_string(), value)
}

fn limit(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(INFINITY)
}

/// CPUQuotaPerSecUSec for a quota per period. systemd keeps the quota as a
/// whole percentage of a CPU, so a fraction is rounded up to the next 10 ms
/// per second (else the kernel would get less than the spec asks).
pub fn quota_per_sec(quota: i64, period: u64) -> u64 {
    if quota <= 0 {
        return INFINITY;
    }
    let period = if period == 0 {
        DEFAULT_PERIOD_US
    } else {
        period
    };
    let per_sec = (quota as u64).saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// A cpuset list (`0-3,7`) as systemd's bitmask: byte i holds CPUs
/// 8i..8i+7, lowest bit first.
pub fn cpuset_bits(list: &str, field: &str) -> Result<Vec<u8>> {
    let bad = |why: String| Error::Invalid {
        field: field.into(),
        message: format!("{list:?}: {why}"),
    };
    let mut bits: Vec<u8> = Vec::new();
    for part in list.trim().split(',').map(str::trim) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{part:?} is not a number or range")))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi || hi >= 1 << 16 {
            return Err(bad(format!("{part:?} is not a valid range")));
        }
        for n in lo..=hi {
            if bits.len() <= n / 8 {
                bits.resize(n / 8 + 1, 0);
            }
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bits)
}

fn dev_path(major: i64, minor: i64) -> String {
    format!("/dev/block/{major}:{minor}")
}

fn path_values(entries: Vec<(String, u64)>) -> Value {
    Value::Array(
        Type::Struct(vec![Type::Str, Type::U64]),
        entries
            .into_iter()
            .map(|(p, v)| Value::Struct(vec![Value::Str(p), Value::U64(v)]))
            .collect(),
    )
}

/// The unit properties for `resources` on a cgroup v1 (or hybrid) host,
/// where systemd's names differ and it has fewer: the memory limit, cpu
/// shares and quota, pids and the blkio weight, as runc sets them there.
/// The v1 backend writes the rest (device rules included) afterwards.
pub fn from_resources_v1(resources: &LinuxResources) -> Result<Vec<Property>> {
    let r = convert::without_unset(resources);
    let mut props = Vec::new();
    if let Some(v) = r.memory().and_then(|m| m.limit()) {
        props.push(prop("MemoryLimit", Value::U64(limit(v))));
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares() {
            props.push(prop("CPUShares", Value::U64(shares)));
        }
        let period = c.period().unwrap_or(0);
        if period != 0 {
            props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
        }
        if c.quota().is_some() || period != 0 {
            props.push(prop(
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(c.quota().unwrap_or(0), period)),
            ));
        }
    }
    if let Some(p) = r.pids() {
        props.push(prop("TasksMax", Value::U64(limit(p.limit()))));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        props.push(prop("BlockIOWeight", Value::U64(u64::from(w))));
    }
    Ok(props)
}

/// The unit properties for `resources`. The cgroupfs backend writes the
/// same resources afterwards; what systemd has no property for comes only
/// from there. `version` is systemd's, asked for only when a property needs
/// a newer one than 240.
pub fn from_resources(
    resources: &LinuxResources,
    version: &mut dyn FnMut() -> u32,
) -> Result<Vec<Property>> {
    let r = convert::without_unset(resources);
    let mut props = Vec::new();
    if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
        props.extend(device_properties(rules));
    }
    if let Some(m) = r.memory() {
        if let Some(v) = m.limit() {
            props.push(prop("MemoryMax", Value::U64(limit(v))));
        }
        if let Some(v) = m.reservation() {
            props.push(prop("MemoryLow", Value::U64(limit(v))));
        }
        if let Some(swap) = convert::memsw_to_swap_max(m.limit(), m.swap())? {
            props.push(prop("MemorySwapMax", Value::U64(limit(swap))));
        }
    }
    if let Some(c) = r.cpu() {
        let idle = c.idle() == Some(1) && version() >= 252;
        if idle {
            // CPUWeight=0 is how systemd spells cpu.idle=1.
            props.push(prop("CPUWeight", Value::U64(0)));
        } else if let Some(shares) = c.shares() {
            props.push(prop(
                "CPUWeight",
                Value::U64(convert::cpu_shares_to_weight(shares)),
            ));
        }
        let period = c.period().unwrap_or(0);
        if period != 0 {
            props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
        }
        if c.quota().is_some() || period != 0 {
            props.push(prop(
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(c.quota().unwrap_or(0), period)),
            ));
        }
        if let Some(cpus) = c.cpus() {
            let bits = cpuset_bits(cpus, "linux.resources.cpu.cpus")?;
            props.push(prop("AllowedCPUs", Value::bytes(&bits)));
        }
        if let Some(mems) = c.mems() {
            let bits = cpuset_bits(mems, "linux.resources.cpu.mems")?;
            props.push(prop("AllowedMemoryNodes", Value::bytes(&bits)));
        }
    }
    if let Some(p) = r.pids() {
        props.push(prop("TasksMax", Value::U64(limit(p.limit()))));
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            props.push(prop(
                "IOWeight",
                Value::U64(convert::blkio_weight_to_io_weight(w)),
            ));
        }
        let weights: Vec<_> = b
            .weight_device()
            .iter()
            .flatten()
            .filter_map(|d| {
                let w = d.weight().filter(|w| *w != 0)?;
                Some((
                    dev_path(d.major(), d.minor()),
                    convert::blkio_weight_to_io_weight(w),
                ))
            })
            .collect();
        if !weights.is_empty() {
            props.push(prop("IODeviceWeight", path_values(weights)));
        }
        let throttles = [
            ("IOReadBandwidthMax", b.throttle_read_bps_device()),
            ("IOWriteBandwidthMax", b.throttle_write_bps_device()),
            ("IOReadIOPSMax", b.throttle_read_iops_device()),
            ("IOWriteIOPSMax", b.throttle_write_iops_device()),
        ];
        for (name, devices) in throttles {
            let entries: Vec<_> = devices
                .iter()
                .flatten()
                .map(|d| {
                    let rate = if d.rate() == 0 { INFINITY } else { d.rate() };
                    (dev_path(d.major(), d.minor()), rate)
                })
                .collect();
            if !entries.is_empty() {
                props.push(prop(name, path_values(entries)));
            }
        }
    }
    if let Some(unified) = r.unified() {
        props.extend(from_unified(unified)?);
    }
    let too_new: Vec<String> = props
        .iter()
        .filter_map(|(name, _)| min_version(name).map(|v| (name, v)))
        .filter(|(_, v)| version() < *v)
        .map(|(name, _)| name.clone())
        .collect();
    if !too_new.is_empty() {
        tracing::debug!(
            "systemd {} has no {too_new:?}: written through cgroupfs only",
            version()
        );
        props.retain(|(name, _)| !too_new.contains(name));
    }
    Ok(props)
}

/// linux.resources.unified keys systemd has properties for (the rest is
/// written to the cgroup's files only).
fn from_unified(unified: &HashMap<String, String>) -> Result<Vec<Property>> {
    let mut props = Vec::new();
    let mut keys: Vec<&String> = unified.keys().collect();
    keys.sort();
    for key in keys {
        let value = unified[key].trim();
        let bad = || Error::Invalid {
            field: format!("linux.resources.unified[{key:?}]"),
            message: format!("{value:?} is not a valid value"),
        };
        let number_or_max = |v: &str| {
            if v == "max" {
                Ok(INFINITY)
            } else {
                v.parse::<u64>().map_err(|_| bad())
            }
        };
        let name = match key.as_str() {
            "memory.high" => "MemoryHigh",
            "memory.low" => "MemoryLow",
            "memory.min" => "MemoryMin",
            "memory.max" => "MemoryMax",
            "memory.swap.max" => "MemorySwapMax",
            "pids.max" => "TasksMax",
            "cpu.weight" => {
                let weight = value.parse::<u64>().map_err(|_| bad())?;
                props.push(prop("CPUWeight", Value::U64(weight)));
                continue;
            }
            "cpu.max" => {
                let mut fields = value.split_whitespace();
                let quota = match fields.next() {
                    Some("max") => 0,
                    Some(q) => q.parse::<i64>().map_err(|_| bad())?,
                    None => return Err(bad()),
                };
                let period = match fields.next() {
                    Some(p) => p.parse::<u64>().map_err(|_| bad())?,
                    None => DEFAULT_PERIOD_US,
                };
                if fields.next().is_some() {
                    return Err(bad());
                }
                props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
                props.push(prop(
                    "CPUQuotaPerSecUSec",
                    Value::U64(quota_per_sec(quota, period)),
                ));
                continue;
            }
            "cpuset.cpus" | "cpuset.mems" => {
                let bits = cpuset_bits(value, &format!("linux.resources.unified[{key:?}]"))?;
                let name = if key == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                props.push(prop(name, Value::bytes(&bits)));
                continue;
            }
            _ => continue,
        };
        props.push(prop(name, Value::U64(number_or_max(value)?)));
    }
    Ok(props)
}

/// The device rules as DevicePolicy and DeviceAllow. systemd only takes an
/// allow list: the rules are played in order onto a deny-all list; a list
/// that ends as "allow all" becomes DevicePolicy=auto. Rules systemd cannot
/// express (a wildcard major with a given minor, or a deny list) are left to
/// berth's own device program, which the cgroupfs backend attaches too.
pub fn device_properties(rules: &[LinuxDeviceCgroup]) -> Vec<Property> {
    let mut allow_all = false;
    // (type, major, minor) → access, in first-allowed order.
    let mut allowed: Vec<((char, i64, i64), String)> = Vec::new();
    for rule in rules {
        let ty = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::P => continue,
        };
        let major = rule.major().unwrap_or(-1);
        let minor = rule.minor().unwrap_or(-1);
        // systemd takes only r, w and m (the kernel ignores other letters).
        let access: String = rule
            .access()
            .as_deref()
            .unwrap_or("rwm")
            .chars()
            .filter(|c| matches!(c, 'r' | 'w' | 'm'))
            .collect();
        if access.is_empty() {
            continue;
        }
        let everything = ty == 'a' && major < 0 && minor < 0;
        if everything && access.contains('r') && access.contains('w') && access.contains('m') {
            allow_all = rule.allow();
            allowed.clear();
            continue;
        }
        let key = (ty, major, minor);
        if rule.allow() {
            match allowed.iter_mut().find(|(k, _)| *k == key) {
                Some((_, have)) => {
                    let missing: String = access.chars().filter(|c| !have.contains(*c)).collect();
                    have.push_str(&missing);
                }
                None => allowed.push((key, access)),
            }
        } else {
            for (k, have) in allowed.iter_mut() {
                let covers = (ty == 'a' || ty == k.0)
                    && (major < 0 || major == k.1)
                    && (minor < 0 || minor == k.2);
                if covers {
                    have.retain(|c| !access.contains(c));
                }
            }
            allowed.retain(|(_, have)| !have.is_empty());
        }
    }
    let entries = Type::Struct(vec![Type::Str, Type::Str]);
    if allow_all {
        if !allowed.is_empty() || rules.iter().any(|r| !r.allow()) {
            tracing::warn!(
                "linux.resources.devices: systemd takes no deny rules; berth's device program enforces them"
            );
        }
        return vec![
            prop("DevicePolicy", Value::Str("auto".into())),
            prop("DeviceAllow", Value::Array(entries, Vec::new())),
        ];
    }
    let mut list = Vec::new();
    for ((ty, major, minor), access) in allowed {
        let group = if ty == 'b' { "block" } else { "char" };
        let path = match (ty, major < 0, minor < 0) {
            // "a" rules with numbers mean both kinds.
            ('a', true, true) => vec!["char-*".to_string(), "block-*".to_string()],
            (_, true, true) => vec![format!("{group}-*")],
            (_, true, false) => {
                tracing::warn!(
                    "linux.resources.devices: systemd has no rule for minor {minor} of any major; berth's device program enforces it"
                );
                continue;
            }
            ('a', false, true) => vec![format!("char-{major}"), format!("block-{major}")],
            (_, false, true) => vec![format!("{group}-{major}")],
            ('a', false, false) => vec![
                format!("/dev/char/{major}:{minor}"),
                format!("/dev/block/{major}:{minor}"),
            ],
            (_, false, false) => vec![format!("/dev/{group}/{major}:{minor}")],
        };
        for p in path {
            list.push(Value::Struct(vec![
                Value::Str(p),
                Value::Str(access.clone()),
            ]));
        }
    }
    // An empty DeviceAllow first: on a running unit, a list is added to
    // the rules it has, an empty one clears them.
    vec![
        prop("DevicePolicy", Value::Str("strict".into())),
        prop("DeviceAllow", Value::Array(entries.clone(), Vec::new())),
        prop("DeviceAllow", Value::Array(entries, list)),
    ]
}

/// `org.systemd.property.<Name>` annotations as properties. As runc: a name
/// is ASCII letters only, three at least; the value is GVariant text; a
/// `...Sec` name takes seconds and becomes `...USec` in microseconds.
pub fn from_annotations(annotations: &HashMap<String, String>) -> Result<Vec<Property>> {
    const PREFIX: &str = "org.systemd.property.";
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(PREFIX))
        .collect();
    keys.sort();
    let mut props = Vec::new();
    for key in keys {
        let field = format!("annotations[{key:?}]");
        let name = &key[PREFIX.len()..];
        if name.len() < 3 || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::Invalid {
                field,
                message: format!(
                    "{name:?} is not a systemd property name (ASCII letters only, 3 at least)"
                ),
            });
        }
        let text = &annotations[key];
        let value = parse_gvariant(text).map_err(|why| Error::Invalid {
            field: field.clone(),
            message: format!("{text:?}: {why}"),
        })?;
        let sec_suffix = name.ends_with("Sec")
            && !name.ends_with("USec")
            && name.as_bytes()[name.len() - 4].is_ascii_lowercase();
        if sec_suffix {
            let usec = seconds_to_usec(&value).ok_or_else(|| Error::Invalid {
                field,
                message: format!("{text:?}: {name} takes a number of seconds"),
            })?;
            props.push((format!("{}USec", &name[..name.len() - 3]), Value::U64(usec)));
        } else {
            props.push((name.to_string(), value));
        }
    }
    Ok(props)
}

fn seconds_to_usec(value: &Value) -> Option<u64> {
    const M: u64 = 1_000_000;
    Some(match value {
        Value::Byte(v) => u64::from(*v) * M,
        Value::I16(v) => u64::try_from(*v).ok()? * M,
        Value::U16(v) => u64::from(*v) * M,
        Value::I32(v) => u64::try_from(*v).ok()? * M,
        Value::U32(v) => u64::from(*v) * M,
        Value::I64(v) => u64::try_from(*v).ok()?.checked_mul(M)?,
        Value::U64(v) => v.checked_mul(M)?,
        Value::Double(v) if *v >= 0.0 => (*v * M as f64) as u64,
        _ => return None,
    })
}

/// The GVariant text forms systemd properties take: booleans, numbers
/// (bare: int32 or double; or typed: `uint64 5`, `@t 5`), strings in single
/// or double quotes, `objectpath '/x'`, and arrays of those.
pub fn parse_gvariant(text: &str) -> std::result::Result<Value, String> {
    let mut p = GvParser {
        s: text.as_bytes(),
        pos: 0,
    };
    let v = p.value(None)?;
    p.skip_space();
    if p.pos != p.s.len() {
        return Err(format!("unexpected text at byte {}", p.pos));
    }
    Ok(v)
}

struct GvParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl GvParser<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> &str {
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'_'))
        {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    fn value(&mut self, want: Option<&Type>) -> std::result::Result<Value, String> {
        self.skip_space();
        match self.s.get(self.pos) {
            None => Err("a value is missing".into()),
            Some(b'@') => {
                self.pos += 1;
                let start = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|c| !c.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                let sig = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                let types = Type::parse_signature(sig).map_err(|e| e.0)?;
                let [ty] = types.as_slice() else {
                    return Err(format!("@{sig} is not one type"));
                };
                self.value(Some(ty))
            }
            Some(b'\'' | b'"') => {
                let s = self.string()?;
                Ok(if want == Some(&Type::Path) {
                    Value::Path(s)
                } else {
                    Value::Str(s)
                })
            }
            Some(b'[') => {
                self.pos += 1;
                let element = match want {
                    Some(Type::Array(e)) => Some((**e).clone()),
                    None => None,
                    Some(other) => return Err(format!("an array is not a {}", other.signature())),
                };
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    if self.s.get(self.pos) == Some(&b']') {
                        self.pos += 1;
                        break;
                    }
                    if !items.is_empty() {
                        if self.s.get(self.pos) != Some(&b',') {
                            return Err("array items must be separated by \",\"".into());
                        }
                        self.pos += 1;
                    }
                    let ty = element
                        .clone()
                        .or_else(|| items.first().map(Value::type_of));
                    items.push(self.value(ty.as_ref())?);
                }
                let element = element
                    .or_else(|| items.first().map(Value::type_of))
                    .ok_or("an empty array needs its type, e.g. @as []")?;
                if items.iter().any(|i| i.type_of() != element) {
                    return Err("array items differ in type".into());
                }
                Ok(Value::Array(element, items))
            }
            Some(_) => {
                let word = self.word().to_string();
                let typed = match word.as_str() {
                    "true" => return Ok(Value::Bool(true)),
                    "false" => return Ok(Value::Bool(false)),
                    "byte" => Some(Type::Byte),
                    "int16" => Some(Type::I16),
                    "uint16" => Some(Type::U16),
                    "int32" => Some(Type::I32),
                    "uint32" => Some(Type::U32),
                    "int64" => Some(Type::I64),
                    "uint64" => Some(Type::U64),
                    "double" => Some(Type::Double),
                    "objectpath" => Some(Type::Path),
                    _ => None,
                };
                match typed {
                    Some(ty) => self.value(Some(&ty)),
                    None => number(&word, want),
                }
            }
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.pos) {
                None => return Err("a string is not closed".into()),
                Some(b'\\') => {
                    let Some(&c) = self.s.get(self.pos + 1) else {
                        return Err("a string ends in \"\\\"".into());
                    };
                    out.push(match c {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => other,
                    });
                    self.pos += 2;
                }
                Some(&c) if c == quote => {
                    self.pos += 1;
                    return String::from_utf8(out).map_err(|_| "a string is not UTF-8".into());
                }
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

fn number(word: &str, want: Option<&Type>) -> std::result::Result<Value, String> {
    let bad = || {
        format!("{word:?} is not a value this parser knows (number, 'string', true/false, [array])")
    };
    let int = || word.parse::<i128>().map_err(|_| bad());
    let range = |ty: &str| format!("{word} is out of range for {ty}");
    Ok(match want {
        Some(Type::Byte) => Value::Byte(u8::try_from(int()?).map_err(|_| range("byte"))?),
        Some(Type::I16) => Value::I16(i16::try_from(int()?).map_err(|_| range("int16"))?),
        Some(Type::U16) => Value::U16(u16::try_from(int()?).map_err(|_| range("uint16"))?),
        Some(Type::I32) => Value::I32(i32::try_from(int()?).map_err(|_| range("int32"))?),
        Some(Type::U32) => Value::U32(u32::try_from(int()?).map_err(|_| range("uint32"))?),
        Some(Type::I64) => Value::I64(i64::try_from(int()?).map_err(|_| range("int64"))?),
        Some(Type::U64) => Value::U64(u64::try_from(int()?).map_err(|_| range("uint64"))?),
        Some(Type::Double) => Value::Double(word.parse().map_err(|_| bad())?),
        Some(other) => return Err(format!("{word} is not a {}", other.signature())),
        None if word.contains(['.', 'e', 'E']) => Value::Double(word.parse().map_err(|_| bad())?),
        None => Value::I32(i32::try_from(int()?).map_err(|_| range("int32 (say uint64 N)"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn props(json: &str) -> Vec<Property> {
        from_resources(&resources(json), &mut || 252).unwrap()
    }

    fn get<'a>(props: &'a [Property], name: &str) -> Option<&'a Value> {
        props.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[test]
    fn quota_is_rounded_up_to_whole_percents() {
        assert_eq!(quota_per_sec(50_000, 100_000), 500_000);
        assert_eq!(quota_per_sec(12_345, 100_000), 130_000);
        assert_eq!(quota_per_sec(20_000, 0), 200_000);
        assert_eq!(quota_per_sec(-1, 100_000), u64::MAX);
    }

    #[test]
    fn cpusets_become_bitmasks() {
        assert_eq!(cpuset_bits("0", "f").unwrap(), [1]);
        assert_eq!(cpuset_bits("0-3,9", "f").unwrap(), [0x0f, 0x02]);
        assert_eq!(cpuset_bits("1,3-4", "f").unwrap(), [0b11010]);
        let err = cpuset_bits("1-x", "linux.resources.cpu.cpus").unwrap_err();
        assert!(
            err.to_string().starts_with("linux.resources.cpu.cpus:"),
            "{err}"
        );
        assert!(cpuset_bits("3-1", "f").is_err());
    }

    #[test]
    fn resources_become_properties() {
        let p = props(
            r#"{"memory":{"limit":1048576,"swap":3145728,"reservation":4096},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
                "pids":{"limit":42},
                "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]}}"#,
        );
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(1_048_576)));
        assert_eq!(get(&p, "MemoryLow"), Some(&Value::U64(4096)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(2_097_152)));
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(100)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(get(&p, "AllowedCPUs"), Some(&Value::bytes(&[3])));
        assert_eq!(get(&p, "AllowedMemoryNodes"), Some(&Value::bytes(&[1])));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(42)));
        assert_eq!(get(&p, "IOWeight"), Some(&Value::U64(4950)));
        assert_eq!(
            get(&p, "IOReadBandwidthMax"),
            Some(&path_values(vec![("/dev/block/8:0".into(), 1000)]))
        );
    }

    #[test]
    fn v1_hosts_get_v1_names() {
        let p = from_resources_v1(&resources(
            r#"{"memory":{"limit":1048576,"reservation":5},"cpu":{"shares":512,"quota":20000},
                "pids":{"limit":9},"blockIO":{"weight":300}}"#,
        ))
        .unwrap();
        assert_eq!(get(&p, "MemoryLimit"), Some(&Value::U64(1_048_576)));
        assert_eq!(get(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(200_000)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(9)));
        assert_eq!(get(&p, "BlockIOWeight"), Some(&Value::U64(300)));
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn unlimited_and_unset() {
        let p =
            props(r#"{"memory":{"limit":-1},"pids":{"limit":-1},"cpu":{"shares":0,"quota":-1}}"#);
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "CPUWeight"), None);
        assert!(props(r#"{"memory":{"limit":0},"pids":{"limit":0}}"#).is_empty());
    }

    #[test]
    fn old_systemd_gets_no_newer_properties() {
        let p = from_resources(
            &resources(r#"{"cpu":{"cpus":"0","period":50000,"quota":10000}}"#),
            &mut || 239,
        )
        .unwrap();
        assert_eq!(get(&p, "AllowedCPUs"), None);
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), None);
        assert!(get(&p, "CPUQuotaPerSecUSec").is_some());
    }

    #[test]
    fn unified_keys_systemd_knows() {
        let p = props(
            r#"{"unified":{"memory.high":"max","cpu.max":"25000 50000","pids.max":"9","io.max":"x"}}"#,
        );
        assert_eq!(get(&p, "MemoryHigh"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(50_000)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(9)));
        let err = from_resources(
            &resources(r#"{"unified":{"memory.max":"lots"}}"#),
            &mut || 252,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.resources.unified[\"memory.max\"]"),
            "{err}"
        );
    }

    fn allow_list(p: &[Property]) -> Vec<(String, String)> {
        let Some(Value::Array(_, items)) = get(p, "DeviceAllow") else {
            panic!("no DeviceAllow")
        };
        items
            .iter()
            .map(|i| match i {
                Value::Struct(f) => (f[0].as_str().unwrap().into(), f[1].as_str().unwrap().into()),
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn device_rules_become_an_allow_list() {
        let p = props(
            r#"{"devices":[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"b","access":"m"},
                {"allow":true,"type":"c","major":5,"minor":1,"access":"rwm"},
                {"allow":false,"type":"c","major":5,"minor":1,"access":"m"},
                {"allow":true,"type":"c","major":1,"minor":11,"access":"wa"},
                {"allow":true,"type":"c","major":1,"minor":12,"access":"x"}]}"#,
        );
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        assert_eq!(
            allow_list(&p),
            [
                ("/dev/char/1:3".to_string(), "rwm".to_string()),
                ("char-136".into(), "rw".into()),
                ("block-*".into(), "m".into()),
                ("/dev/char/5:1".into(), "rw".into()),
                ("/dev/char/1:11".into(), "w".into()),
            ]
        );
        let p = props(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#);
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::Str("auto".into())));
        assert!(allow_list(&p).is_empty());
    }

    #[test]
    fn annotations_in_gvariant_text() {
        let a: HashMap<String, String> = [
            ("org.systemd.property.TimeoutStopUSec", "uint64 123456789"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.RuntimeMaxSec", "3"),
            ("org.systemd.property.CPUAccounting", "false"),
            ("org.systemd.property.Environment", "['A=1', \"B=2\"]"),
            ("org.systemd.property.Wants", "@as []"),
            ("other.annotation", "whatever"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = from_annotations(&a).unwrap();
        assert_eq!(get(&p, "TimeoutStopUSec"), Some(&Value::U64(123_456_789)));
        assert_eq!(
            get(&p, "CollectMode"),
            Some(&Value::Str("inactive-or-failed".into()))
        );
        assert_eq!(get(&p, "RuntimeMaxUSec"), Some(&Value::U64(3_000_000)));
        assert_eq!(get(&p, "CPUAccounting"), Some(&Value::Bool(false)));
        assert_eq!(
            get(&p, "Environment"),
            Some(&Value::strings(&["A=1", "B=2"]))
        );
        assert_eq!(get(&p, "Wants"), Some(&Value::strings::<&str>(&[])));
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn bad_annotations_name_the_annotation() {
        for (k, v) in [
            ("org.systemd.property.Ab", "1"),
            ("org.systemd.property.Memory_Max", "1"),
            ("org.systemd.property.MemoryMax", "uint64 -1"),
            ("org.systemd.property.MemoryMax", "'open"),
            ("org.systemd.property.MemoryMax", "[1, 'a']"),
            ("org.systemd.property.MemoryMax", "1 2"),
            ("org.systemd.property.TimeoutSec", "'x'"),
        ] {
            let a = HashMap::from([(k.to_string(), v.to_string())]);
            let err = from_annotations(&a).expect_err(v);
            assert!(
                err.to_string().starts_with(&format!("annotations[{k:?}]")),
                "{err}"
            );
        }
    }
}
