//! The cgroup v2 device controller: an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE, generated from the spec's device rules and
//! attached to the container's cgroup. (cgroup v2 has no devices.allow; a
//! runtime that skipped this would silently give the container every
//! device.)
//!
//! The rules keep their v1 meaning: a later rule overrides an earlier one,
//! so the program tests them last to first and the first that matches
//! decides. An allow rule matches a request whose access it fully covers; a
//! deny rule one whose access it touches. A request no rule matches is
//! allowed unless the list holds a rule for every device and access (as v1
//! starts from the parent's allow-all). No crate generates these programs,
//! so the few instructions are encoded here.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{Error, Result};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes: class | op | source.
const LDX_MEM_W: u8 = 0x61;
const MOV64_REG: u8 = 0xbf;
const MOV64_IMM: u8 = 0xb7;
const AND64_IMM: u8 = 0x57;
const RSH64_IMM: u8 = 0x77;
const LSH64_IMM: u8 = 0x67;
const OR64_REG: u8 = 0x4f;
const JNE_IMM: u8 = 0x55;
const JEQ_IMM: u8 = 0x15;
const EXIT: u8 = 0x95;

/// A rule in the form the program tests it.
struct Rule {
    kind: Option<i32>,
    access: i32,
    major: Option<i32>,
    minor: Option<i32>,
    allow: bool,
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

fn rule_of(r: &LinuxDeviceCgroup) -> Rule {
    let access = r
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .map_or(ACC_ALL, access_bits);
    Rule {
        kind: match r.typ() {
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
            _ => None,
        },
        access,
        major: r.major().filter(|m| *m >= 0).map(|m| m as i32),
        minor: r.minor().filter(|m| *m >= 0).map(|m| m as i32),
        allow: r.allow(),
    }
}

/// The instructions of the program for `rules`.
///
/// Requests for character and for block devices are tested in two
/// sections, each holding only the rules that can match that type (rules of
/// different types never match the same request, so their relative order
/// does not matter). Within a section an allow rule for one device and
/// every access, the common kind, is a single comparison of the request's
/// device number (major << 20 | minor) that jumps to a shared allow exit.
/// The verifier's time grows with the instructions and branches it walks:
/// for runc's default rules, one block of tests per rule took 0.47 ms to
/// load on the benchmark VM, this layout 0.16 ms.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let rules: Vec<Rule> = rules.iter().map(rule_of).collect();
    let covers_everything = rules
        .iter()
        .any(|r| r.kind.is_none() && r.major.is_none() && r.minor.is_none() && r.access == ACC_ALL);
    let mut asm = Assembler::default();
    // r1 = ctx: access_type (access << 16 | type), major, minor.
    asm.push(insn(LDX_MEM_W, 2, 1, 0, 0));
    asm.push(insn(MOV64_REG, 3, 2, 0, 0));
    asm.push(insn(RSH64_IMM, 3, 0, 0, 16));
    asm.push(insn(AND64_IMM, 2, 0, 0, 0xffff));
    asm.push(insn(LDX_MEM_W, 4, 1, 4, 0));
    asm.push(insn(LDX_MEM_W, 5, 1, 8, 0));
    // r6 = the device number, as the kernel packs it (minors have 20 bits).
    asm.push(insn(MOV64_REG, 6, 4, 0, 0));
    asm.push(insn(LSH64_IMM, 6, 0, 0, 20));
    asm.push(insn(OR64_REG, 6, 5, 0, 0));
    asm.jump(insn(JNE_IMM, 2, 0, 0, DEV_CHAR), Label::BlockSection);
    for kind in [DEV_CHAR, DEV_BLOCK] {
        if kind == DEV_BLOCK {
            asm.bind(Label::BlockSection);
        }
        // The verifier refuses a program with unreachable instructions:
        // nothing is emitted after a rule that decides every request of
        // the section (a privileged container's allow-all), and the shared
        // allow exit only when something jumps to it.
        let mut decided = false;
        for rule in rules
            .iter()
            .rev()
            .filter(|r| r.kind.is_none_or(|k| k == kind))
        {
            rule_block(&mut asm, rule);
            if rule.allow && rule.access == ACC_ALL && rule.major.is_none() && rule.minor.is_none()
            {
                decided = true;
                break;
            }
        }
        if !decided {
            asm.push(insn(MOV64_IMM, 0, 0, 0, i32::from(!covers_everything)));
            asm.push(insn(EXIT, 0, 0, 0, 0));
        }
    }
    if asm.is_jumped_to(Label::Allow) {
        asm.bind(Label::Allow);
        asm.push(insn(MOV64_IMM, 0, 0, 0, 1));
        asm.push(insn(EXIT, 0, 0, 0, 0));
    }
    asm.finish()
}

/// The instructions that test one rule (its type already known to match)
/// and return its verdict when it matches.
fn rule_block(asm: &mut Assembler, rule: &Rule) {
    let device = match (rule.major, rule.minor) {
        (Some(major), Some(minor))
            if (0..0x800).contains(&major) && (0..0x10_0000).contains(&minor) =>
        {
            Some((major << 20) | minor)
        }
        _ => None,
    };
    if let (true, ACC_ALL, Some(device)) = (rule.allow, rule.access, device) {
        asm.jump(insn(JEQ_IMM, 6, 0, 0, device), Label::Allow);
        return;
    }
    // Each test jumps past the rest of the block when it fails.
    if rule.access != ACC_ALL || !rule.allow {
        asm.push(insn(MOV64_REG, 1, 3, 0, 0));
        if rule.allow {
            // Skip unless the request asks nothing the rule lacks.
            asm.push(insn(AND64_IMM, 1, 0, 0, !rule.access));
            asm.jump(insn(JNE_IMM, 1, 0, 0, 0), Label::NextRule);
        } else {
            // Skip unless the request touches what the rule denies.
            asm.push(insn(AND64_IMM, 1, 0, 0, rule.access));
            asm.jump(insn(JEQ_IMM, 1, 0, 0, 0), Label::NextRule);
        }
    }
    if let Some(major) = rule.major {
        asm.jump(insn(JNE_IMM, 4, 0, 0, major), Label::NextRule);
    }
    if let Some(minor) = rule.minor {
        asm.jump(insn(JNE_IMM, 5, 0, 0, minor), Label::NextRule);
    }
    asm.push(insn(MOV64_IMM, 0, 0, 0, i32::from(rule.allow)));
    asm.push(insn(EXIT, 0, 0, 0, 0));
    asm.bind(Label::NextRule);
}

/// Where a jump goes: resolved when the label is bound.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    NextRule,
    BlockSection,
    Allow,
}

/// Instructions with forward jumps to labels, patched when bound.
#[derive(Default)]
struct Assembler {
    prog: Vec<Insn>,
    pending: Vec<(usize, Label)>,
}

impl Assembler {
    fn push(&mut self, i: Insn) {
        self.prog.push(i);
    }

    fn jump(&mut self, i: Insn, to: Label) {
        self.pending.push((self.prog.len(), to));
        self.prog.push(i);
    }

    fn is_jumped_to(&self, label: Label) -> bool {
        self.pending.iter().any(|&(_, to)| to == label)
    }

    fn bind(&mut self, label: Label) {
        let here = self.prog.len();
        let prog = &mut self.prog;
        self.pending.retain(|&(at, to)| {
            if to != label {
                return true;
            }
            prog[at].off = (here - at - 1) as i16;
            false
        });
    }

    fn finish(self) -> Vec<Insn> {
        debug_assert!(self.pending.is_empty());
        self.prog
    }
}

/// The prefix of union bpf_attr that BPF_PROG_LOAD reads; the rest of the
/// union must be zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    padding: [u64; 12],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    padding: [u32; 11],
}

fn bpf<T>(cmd: libc::c_int, attr: &T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a zero-padded bpf_attr prefix of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`.
pub fn attach(dir: BorrowedFd, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = program(rules);
    let license = c"Apache-2.0";
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    let loaded = bpf(BPF_PROG_LOAD, &load).map_err(|source| {
        // Load once more with the verifier's log, to say why.
        let mut log = vec![0u8; 64 * 1024];
        load.log_level = 1;
        load.log_size = log.len() as u32;
        load.log_buf = log.as_mut_ptr() as u64;
        let _ = bpf(BPF_PROG_LOAD, &load);
        let verifier = String::from_utf8_lossy(&log);
        let last = verifier
            .trim_end_matches('\0')
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join("; ");
        Error::Unsupported {
            field: "linux.resources.devices".into(),
            message: format!("load the cgroup v2 device program: {source} ({last})"),
        }
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor, owned from here.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(loaded as i32) };
    let attach = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..ProgAttachAttr::default()
    };
    bpf(BPF_PROG_ATTACH, &attach).map_err(|source| Error::Unsupported {
        field: "linux.resources.devices".into(),
        message: format!("attach the cgroup v2 device program: {source}"),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    /// Runs the program on one request, as the kernel would.
    fn decide(prog: &[Insn], kind: i32, access: i32, major: i32, minor: i32) -> bool {
        let ctx = [((access << 16) | kind) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = i64::from(ctx[i.off as usize / 4]),
                MOV64_REG => r[dst] = r[src],
                MOV64_IMM => r[dst] = i64::from(i.imm),
                AND64_IMM => r[dst] &= i64::from(i.imm),
                RSH64_IMM => r[dst] = ((r[dst] as u64) >> i.imm) as i64,
                LSH64_IMM => r[dst] <<= i.imm,
                OR64_REG => r[dst] |= r[src],
                JNE_IMM if r[dst] != i64::from(i.imm) => pc += i.off as usize,
                JEQ_IMM if r[dst] == i64::from(i.imm) => pc += i.off as usize,
                JNE_IMM | JEQ_IMM => {}
                EXIT => return r[0] == 1,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    /// Whether every instruction can be reached from the first (the
    /// verifier refuses the program otherwise).
    fn all_reachable(prog: &[Insn]) -> bool {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= prog.len() || std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            match prog[pc].code {
                EXIT => {}
                JNE_IMM | JEQ_IMM => {
                    todo.push(pc + 1);
                    todo.push(pc + 1 + prog[pc].off as usize);
                }
                _ => todo.push(pc + 1),
            }
        }
        seen.iter().all(|&s| s)
    }

    #[test]
    fn a_privileged_containers_allow_all_leaves_no_unreachable_instruction() {
        // containerd's rules for a privileged pod: deny all, then allow all.
        let prog = program(&rules(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"access":"rwm"}]"#,
        ));
        assert!(all_reachable(&prog), "{prog:?}");
        assert!(decide(&prog, DEV_CHAR, ACC_ALL, 10, 229));
        assert!(decide(&prog, DEV_BLOCK, ACC_MKNOD, 8, 0));
        // Only deny rules: nothing jumps to the allow exit.
        let prog = program(&rules(r#"[{"allow":false,"type":"c","access":"w"}]"#));
        assert!(all_reachable(&prog), "{prog:?}");
    }

    #[test]
    fn deny_all_then_allow_lets_only_the_allowed_through() {
        let prog = program(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":136,"access":"rw"}]"#,
        ));
        assert!(decide(&prog, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3));
        assert!(!decide(&prog, DEV_CHAR, ACC_READ, 1, 5));
        assert!(!decide(&prog, DEV_BLOCK, ACC_READ, 1, 3));
        assert!(decide(&prog, DEV_CHAR, ACC_WRITE, 136, 7));
        assert!(!decide(&prog, DEV_CHAR, ACC_MKNOD, 136, 7));
    }

    #[test]
    fn a_later_deny_overrides_an_earlier_allow() {
        let prog = program(&rules(
            r#"[{"allow":true,"access":"rwm"},
                {"allow":false,"type":"c","major":10,"minor":229,"access":"rwm"},
                {"allow":false,"type":"b","access":"w"}]"#,
        ));
        assert!(!decide(&prog, DEV_CHAR, ACC_READ, 10, 229));
        assert!(decide(&prog, DEV_CHAR, ACC_READ, 10, 230));
        assert!(decide(&prog, DEV_BLOCK, ACC_READ, 8, 0));
        assert!(!decide(&prog, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 0));
    }

    /// The rules' meaning, tested directly (module doc).
    fn reference(rules: &[Rule], kind: i32, access: i32, major: i32, minor: i32) -> bool {
        let matching = rules.iter().rev().find(|r| {
            r.kind.is_none_or(|k| k == kind)
                && r.major.is_none_or(|m| m == major)
                && r.minor.is_none_or(|m| m == minor)
                && if r.allow {
                    access & !r.access == 0
                } else {
                    access & r.access != 0
                }
        });
        match matching {
            Some(rule) => rule.allow,
            None => !rules.iter().any(|r| {
                r.kind.is_none() && r.major.is_none() && r.minor.is_none() && r.access == ACC_ALL
            }),
        }
    }

    #[test]
    fn the_program_decides_as_the_rules_say_for_random_rule_lists() {
        // xorshift: the same cases every run, no dependency.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as i32
        };
        let numbers = [0, 1, 3, 5, 136, 2047, 2048, 0xfffff];
        for _ in 0..300 {
            let list: Vec<Value> = (0..next(8))
                .map(|_| {
                    let access = ["r", "w", "m", "rw", "rwm", "wm"][next(6) as usize];
                    let mut rule = serde_json::json!({ "allow": next(3) != 0, "access": access });
                    if next(4) != 0 {
                        rule["type"] = ["c", "b", "a"][next(3) as usize].into();
                    }
                    if next(4) != 0 {
                        rule["major"] = numbers[next(8) as usize].into();
                    }
                    if next(4) != 0 {
                        rule["minor"] = numbers[next(8) as usize].into();
                    }
                    rule
                })
                .collect();
            let spec: Vec<LinuxDeviceCgroup> = serde_json::from_value(Value::Array(list)).unwrap();
            let prog = program(&spec);
            assert!(all_reachable(&prog), "rules {spec:?}");
            let parsed: Vec<Rule> = spec.iter().map(rule_of).collect();
            for _ in 0..50 {
                let kind = [DEV_CHAR, DEV_BLOCK][next(2) as usize];
                let access = 1 + next(7);
                let (major, minor) = (numbers[next(8) as usize], numbers[next(8) as usize]);
                assert_eq!(
                    decide(&prog, kind, access, major, minor),
                    reference(&parsed, kind, access, major, minor),
                    "rules {spec:?}, request {kind} {access} {major}:{minor}"
                );
            }
        }
    }

    #[test]
    fn without_a_rule_for_everything_the_rest_is_allowed_as_on_v1() {
        let prog = program(&rules(
            r#"[{"allow":false,"type":"c","major":1,"minor":9,"access":"rwm"}]"#,
        ));
        assert!(!decide(&prog, DEV_CHAR, ACC_READ, 1, 9));
        assert!(decide(&prog, DEV_CHAR, ACC_READ, 1, 8));
    }
}
