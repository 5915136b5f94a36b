//! Seccomp profiles in Docker's format, compiled to the classic BPF program
//! a container's PID 1 installs before it runs the app.
//!
//! Docker's default profile (`data/docker-default.json`, moby's own file)
//! is built in; `--security-opt seccomp=FILE.json` brings another one in the
//! same format. A profile is read as Docker reads it (its `includes` and
//! `excludes` by architecture, capability and kernel version; `archMap`) and
//! compiled as runc compiles it with libseccomp: an allow-list whose
//! default action answers everything left out, rules with argument
//! conditions (several conditions on one argument are alternatives, as in
//! runc), and `ENOSYS` for a call numbered after every call the profile
//! names, so a C library falls back from a system call newer than the
//! profile (as runc does) instead of taking the `EPERM` for a denial.
//!
//! Pure: the caller gives the architecture, the capabilities and the kernel
//! version; nothing here reads the host.

pub mod bpf;

use std::collections::BTreeMap;

use serde::Deserialize;

use bpf::{Asm, Cmp, Insn, Label};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("seccomp profile: {0}")]
pub struct Error(String);

fn err<T>(s: impl Into<String>) -> Result<T, Error> {
    Err(Error(s.into()))
}

/// A profile as Docker's JSON format writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    pub architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    pub syscalls: Vec<Syscall>,
    #[serde(default, deserialize_with = "nullable")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Syscall {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub includes: Filter,
    #[serde(default, deserialize_with = "nullable")]
    pub excludes: Filter,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    #[serde(default, deserialize_with = "nullable")]
    pub arches: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub caps: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// `null` reads as empty, as in Go's encoding/json (moby's own file has `"args": null`).
fn nullable<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// The flags of `seccomp(SECCOMP_SET_MODE_FILTER)` a profile may ask for.
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

impl Profile {
    /// Reads a profile, naming the line and column of what is wrong.
    pub fn parse(json: &str) -> Result<Profile, Error> {
        let p: Profile = serde_json::from_str(json).map_err(|e| Error(e.to_string()))?;
        if p.listener_path.is_some() {
            return err("`listenerPath` (a user-space notifier) is not supported");
        }
        if !p.architectures.is_empty() && !p.arch_map.is_empty() {
            return err("both `architectures` and `archMap` are given; use one");
        }
        action(&p.default_action, p.default_errno_ret)?;
        p.filter_flags()?;
        for s in &p.syscalls {
            if s.name.is_some() && !s.names.is_empty() {
                return err("both `name` and `names` are given in one rule; use one");
            }
            action(&s.action, s.errno_ret)?;
            for a in &s.args {
                if a.index > 5 {
                    return err(format!("argument index {} is out of range (0-5)", a.index));
                }
                op(&a.op)?;
            }
            for k in [&s.includes.min_kernel, &s.excludes.min_kernel]
                .into_iter()
                .flatten()
            {
                kernel_version(k)?;
            }
        }
        Ok(p)
    }

    /// Docker's default profile.
    pub fn docker_default() -> Profile {
        Profile::parse(include_str!("../data/docker-default.json"))
            .expect("the built-in profile is valid (tested)")
    }

    /// The `seccomp(2)` flags the profile asks for.
    pub fn filter_flags(&self) -> Result<u32, Error> {
        self.flags.iter().try_fold(0, |acc, f| {
            Ok(acc
                | match f.as_str() {
                    "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => FLAG_WAIT_KILLABLE_RECV,
                    other => return err(format!("unsupported flag `{other}`")),
                })
        })
    }
}

/// The architectures a filter can hold a table for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

impl Arch {
    /// The architecture this crate was built for.
    pub fn native() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "x86" => Some(Arch::X86),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }
    /// Its name in a profile's `includes.arches` (Docker's native names).
    fn docker_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::X86 => "x86",
            Arch::X32 => "x32",
            Arch::Aarch64 => "arm64",
        }
    }
    fn scmp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::X86 => "SCMP_ARCH_X86",
            Arch::X32 => "SCMP_ARCH_X32",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
        }
    }
    fn from_scmp(name: &str) -> Option<Arch> {
        [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64]
            .into_iter()
            .find(|a| a.scmp_name() == name)
    }
    fn audit(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => AUDIT_ARCH_X86_64,
            Arch::X86 => AUDIT_ARCH_I386,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }
    /// Arguments wider than 32 bits (a 32-bit ABI's high words are zero).
    fn wide(self) -> bool {
        self != Arch::X86
    }
    fn table_text(self) -> &'static str {
        match self {
            Arch::X86_64 => include_str!("../data/x86_64.tbl"),
            Arch::X86 => include_str!("../data/i386.tbl"),
            Arch::X32 => include_str!("../data/x32.tbl"),
            Arch::Aarch64 => include_str!("../data/aarch64.tbl"),
        }
    }
    /// The number of system call `name` on this architecture, from its
    /// table sorted by name.
    pub fn syscall(self, name: &str) -> Option<u32> {
        let table = match self {
            Arch::X86_64 => X86_64_BY_NAME,
            Arch::X86 => X86_BY_NAME,
            Arch::X32 => X32_BY_NAME,
            Arch::Aarch64 => AARCH64_BY_NAME,
        };
        table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }
    /// Every system call of this architecture, by number.
    pub fn syscalls(self) -> impl Iterator<Item = (&'static str, u32)> {
        self.table_text()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(n, nr)| Some((n, nr.parse().ok()?)))
    }
}

/// What a filter is compiled for.
#[derive(Clone, Debug)]
pub struct Target {
    /// The architecture of the container's processes (the host's).
    pub arch: Arch,
    /// The capabilities the container holds (`CAP_SYS_ADMIN`, ...).
    pub caps: Vec<String>,
    /// The running kernel's major and minor version.
    pub kernel: (u32, u32),
}

fn action(name: &str, errno: Option<u32>) -> Result<u32, Error> {
    let errno = errno.unwrap_or(libc_eperm());
    if errno > 0xffff {
        return err(format!("errno {errno} is out of range"));
    }
    Ok(match name {
        "SCMP_ACT_ALLOW" => bpf::RET_ALLOW,
        "SCMP_ACT_ERRNO" => bpf::RET_ERRNO | errno,
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => bpf::RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => bpf::RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => bpf::RET_TRAP,
        "SCMP_ACT_TRACE" => bpf::RET_TRACE | errno,
        "SCMP_ACT_LOG" => bpf::RET_LOG,
        "SCMP_ACT_NOTIFY" => {
            return err("action SCMP_ACT_NOTIFY (a user-space notifier) is not supported")
        }
        other => return err(format!("unknown action `{other}`")),
    })
}

const fn libc_eperm() -> u32 {
    1
}
const ENOSYS: u32 = 38;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

fn op(name: &str) -> Result<Op, Error> {
    Ok(match name {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        other => return err(format!("unknown argument operator `{other}`")),
    })
}

fn kernel_version(s: &str) -> Result<(u32, u32), Error> {
    let bad = || Error(format!("invalid minKernel `{s}`: expected MAJOR.MINOR"));
    let (a, b) = s.split_once('.').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// One argument condition.
#[derive(Clone, Copy, Debug)]
struct Cond {
    index: u32,
    op: Op,
    value: u64,
    value_two: u64,
}

impl Cond {
    fn holds(&self, args: &[u64; 6], wide: bool) -> bool {
        let mut a = args[self.index as usize];
        let (mut v, mut v2) = (self.value, self.value_two);
        if !wide {
            (a, v, v2) = (a as u32 as u64, v as u32 as u64, v2 as u32 as u64);
        }
        match self.op {
            Op::Ne => a != v,
            Op::Lt => a < v,
            Op::Le => a <= v,
            Op::Eq => a == v,
            Op::Ge => a >= v,
            Op::Gt => a > v,
            Op::MaskedEq => a & v == v2,
        }
    }
}

/// A rule that applies to the target: its calls, its alternatives (each a
/// conjunction of conditions; none means always), and its return value.
#[derive(Clone, Debug)]
struct Rule<'p> {
    names: Vec<&'p str>,
    alternatives: Vec<Vec<Cond>>,
    ret: u32,
}

/// The profile's rules that apply to `target`, as Docker selects them.
fn rules<'p>(p: &'p Profile, t: &Target) -> Result<Vec<Rule<'p>>, Error> {
    let me = t.arch.docker_name();
    let at_least = |k: &Option<String>| -> Result<Option<bool>, Error> {
        k.as_deref()
            .map(|k| kernel_version(k).map(|v| t.kernel >= v))
            .transpose()
    };
    let mut out = Vec::new();
    for s in &p.syscalls {
        let ex = &s.excludes;
        if ex.arches.iter().any(|a| a == me)
            || ex.caps.iter().any(|c| t.caps.contains(c))
            || at_least(&ex.min_kernel)? == Some(true)
        {
            continue;
        }
        let inc = &s.includes;
        if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == me))
            || !inc.caps.iter().all(|c| t.caps.contains(c))
            || at_least(&inc.min_kernel)? == Some(false)
        {
            continue;
        }
        let conds: Vec<Cond> = s
            .args
            .iter()
            .map(|a| {
                Ok(Cond {
                    index: a.index,
                    op: op(&a.op)?,
                    value: a.value,
                    value_two: a.value_two,
                })
            })
            .collect::<Result<_, Error>>()?;
        // As runc: several conditions on one argument are alternatives
        // (a rule each); otherwise they must all hold.
        let repeated = conds
            .iter()
            .enumerate()
            .any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
        let alternatives = if repeated {
            conds.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conds]
        };
        out.push(Rule {
            names: s.name.iter().chain(&s.names).map(String::as_str).collect(),
            alternatives,
            ret: action(&s.action, s.errno_ret)?,
        });
    }
    Ok(out)
}

/// The architectures a filter for `t` covers: the native one first.
fn arches(p: &Profile, t: &Target) -> Vec<Arch> {
    let named: Vec<&String> = if !p.architectures.is_empty() {
        p.architectures.iter().collect()
    } else {
        p.arch_map
            .iter()
            .find(|m| m.architecture == t.arch.scmp_name())
            .map(|m| {
                std::iter::once(&m.architecture)
                    .chain(&m.sub_architectures)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = vec![t.arch];
    out.extend(named.iter().filter_map(|n| Arch::from_scmp(n)));
    out.sort();
    out.dedup();
    out.sort_by_key(|a| *a != t.arch);
    out
}

// Each architecture's calls sorted by name (see build.rs).
include!(concat!(env!("OUT_DIR"), "/tables.rs"));

/// A rule as one call sees it: its alternatives and its return value.
type Decision<'a> = (&'a [Vec<Cond>], u32);

/// The decisions for one architecture: each call's rules, in profile order.
struct Section<'a> {
    arch: Arch,
    calls: BTreeMap<u32, Vec<Decision<'a>>>,
    /// The highest number the profile names (`ENOSYS` beyond it).
    last: u32,
}

fn section<'a>(arch: Arch, rules: &'a [Rule<'_>]) -> Section<'a> {
    let mut calls: BTreeMap<u32, Vec<Decision<'a>>> = BTreeMap::new();
    for r in rules {
        // A name this architecture lacks is skipped, as libseccomp does.
        for nr in r.names.iter().filter_map(|n| arch.syscall(n)) {
            calls.entry(nr).or_default().push((&r.alternatives, r.ret));
        }
    }
    let last = calls.keys().next_back().copied().unwrap_or(0);
    Section { arch, calls, last }
}

impl Section<'_> {
    /// What the filter answers (the reference the compiled code must agree with).
    fn decide(&self, data: &bpf::Data, default: u32) -> u32 {
        if let Some(rules) = self.calls.get(&data.nr) {
            for (alternatives, ret) in rules {
                if alternatives
                    .iter()
                    .any(|all| all.iter().all(|c| c.holds(&data.args, self.arch.wide())))
                {
                    return *ret;
                }
            }
            return default;
        }
        self.fallback(data.nr, default)
    }
    fn fallback(&self, nr: u32, default: u32) -> u32 {
        // As runc: no stub for an allowing or tracing default, nor for an
        // architecture the profile names no call of.
        let allowing = matches!(default, bpf::RET_ALLOW | bpf::RET_LOG)
            || default & 0xffff_0000 == bpf::RET_TRACE;
        if nr > self.last && !allowing && !self.calls.is_empty() {
            bpf::RET_ERRNO | ENOSYS
        } else {
            default
        }
    }

    /// A binary search over the call number (a few comparisons for any
    /// call, where a list of ~350 took up to 700 instructions per call
    /// and made a filter the kernel was slow to take), then each call's
    /// argument rules.
    fn emit(&self, asm: &mut Asm, default: u32) {
        // The whole number space, cut where the outcome changes: each cut
        // the first number of an interval with one outcome.
        let mut cuts: Vec<(u32, Outcome<'_>)> = Vec::new();
        let mut push = |start: u32, o| match (cuts.last(), o) {
            (Some((_, Outcome::Ret(last))), Outcome::Ret(v)) if *last == v => {}
            (_, o) => cuts.push((start, o)),
        };
        let mut next = 0;
        for (nr, rules) in &self.calls {
            if *nr > next {
                push(next, Outcome::Ret(default));
            }
            push(
                *nr,
                match rules.as_slice() {
                    [(alts, ret)] if alts.iter().any(|a| a.is_empty()) => Outcome::Ret(*ret),
                    _ => Outcome::Rules(rules),
                },
            );
            next = nr + 1;
        }
        push(next, Outcome::Ret(self.fallback(self.last + 1, default)));
        let mut blocks = Vec::new();
        search(asm, &cuts, &mut blocks);
        for (block, rules) in blocks {
            asm.mark(block);
            for (alts, ret) in rules {
                for all in alts.iter() {
                    let fail = asm.label();
                    for c in all {
                        emit_cond(asm, c, self.arch.wide(), fail);
                    }
                    asm.ret(*ret);
                    asm.mark(fail);
                }
            }
            asm.ret(default);
        }
    }
}

/// What a range of call numbers gets: an answer, or its rules' verdict.
#[derive(Clone, Copy)]
enum Outcome<'a> {
    Ret(u32),
    Rules(&'a [Decision<'a>]),
}

/// Halves `cuts` (the call number in the accumulator) down to one
/// outcome. Conditional jumps reach 255 instructions at most: each goes to
/// the next instruction or the one after, an unconditional one farther.
fn search<'a>(
    asm: &mut Asm,
    cuts: &[(u32, Outcome<'a>)],
    blocks: &mut Vec<(Label, &'a [Decision<'a>])>,
) {
    match cuts {
        [] => {}
        [(_, Outcome::Ret(v))] => asm.ret(*v),
        [(_, Outcome::Rules(rules))] => {
            let block = asm.label();
            asm.goto(block);
            blocks.push((block, rules));
        }
        _ => {
            let mid = cuts.len() / 2;
            let (far, near, upper) = (asm.label(), asm.label(), asm.label());
            asm.jump(Cmp::Ge, cuts[mid].0, far, near);
            asm.mark(far);
            asm.goto(upper);
            asm.mark(near);
            search(asm, &cuts[..mid], blocks);
            asm.mark(upper);
            search(asm, &cuts[mid..], blocks);
        }
    }
}

/// Falls through when `c` holds, jumps to `fail` when it does not.
fn emit_cond(asm: &mut Asm, c: &Cond, wide: bool, fail: Label) {
    let pass = asm.label();
    let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
    let (hi2, lo2) = ((c.value_two >> 32) as u32, c.value_two as u32);
    let arg = |high| bpf::off_arg(c.index, high);
    // The high words decide unless equal; then the low words do.
    let high_words = |asm: &mut Asm, above: Label, below: Label| {
        let low = asm.label();
        if wide {
            asm.load(arg(true));
            let not_above = asm.label();
            asm.jump(Cmp::Gt, hi, above, not_above);
            asm.mark(not_above);
            asm.jump(Cmp::Eq, hi, low, below);
        }
        asm.mark(low);
        asm.load(arg(false));
    };
    match c.op {
        Op::Eq | Op::Ne | Op::MaskedEq => {
            let (same, differ) = if c.op == Op::Ne {
                (fail, pass)
            } else {
                (pass, fail)
            };
            let (mhi, mlo, vhi, vlo) = if c.op == Op::MaskedEq {
                (hi, lo, hi2, lo2)
            } else {
                (u32::MAX, u32::MAX, hi, lo)
            };
            if wide {
                let next = asm.label();
                asm.load(arg(true));
                if mhi != u32::MAX {
                    asm.and(mhi);
                }
                asm.jump(Cmp::Eq, vhi, next, differ);
                asm.mark(next);
            }
            asm.load(arg(false));
            if mlo != u32::MAX {
                asm.and(mlo);
            }
            asm.jump(Cmp::Eq, vlo, same, differ);
        }
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            // a > v (or a >= v); Lt and Le are their negations.
            let (yes, no) = if matches!(c.op, Op::Gt | Op::Ge) {
                (pass, fail)
            } else {
                (fail, pass)
            };
            high_words(asm, yes, no);
            let cmp = if matches!(c.op, Op::Gt | Op::Le) {
                Cmp::Gt
            } else {
                Cmp::Ge
            };
            asm.jump(cmp, lo, yes, no);
        }
    }
    asm.mark(pass);
}

/// Compiles `p` for `t`.
pub fn compile(p: &Profile, t: &Target) -> Result<Vec<Insn>, Error> {
    let default = action(&p.default_action, p.default_errno_ret)?;
    let rules = rules(p, t)?;
    let sections: Vec<Section> = arches(p, t)
        .into_iter()
        .map(|a| section(a, &rules))
        .collect();
    let mut asm = Asm::default();
    asm.load(bpf::OFF_ARCH);
    // One entry per audit architecture (x86_64 and x32 share one).
    let mut audits: Vec<(u32, Label)> = Vec::new();
    for s in &sections {
        if !audits.iter().any(|(a, _)| *a == s.arch.audit()) {
            let (go, next) = (asm.label(), asm.label());
            asm.jump(Cmp::Eq, s.arch.audit(), go, next);
            asm.mark(go);
            let entry = asm.label();
            asm.goto(entry);
            asm.mark(next);
            audits.push((s.arch.audit(), entry));
        }
    }
    // Another architecture's calls are not what the profile means.
    asm.ret(bpf::RET_KILL_PROCESS);
    for (audit, entry) in audits {
        asm.mark(entry);
        asm.load(bpf::OFF_NR);
        let find = |a: Arch| sections.iter().find(|s| s.arch == a);
        if audit == AUDIT_ARCH_X86_64 {
            // x32 numbers carry a high bit; x86_64's do not.
            let (x32, native, x32_entry) = (asm.label(), asm.label(), asm.label());
            asm.jump(Cmp::Ge, X32_SYSCALL_BIT, x32, native);
            asm.mark(x32);
            asm.goto(x32_entry);
            asm.mark(native);
            match find(Arch::X86_64) {
                Some(s) => s.emit(&mut asm, default),
                None => asm.ret(bpf::RET_KILL_PROCESS),
            }
            asm.mark(x32_entry);
            match find(Arch::X32) {
                Some(s) => s.emit(&mut asm, default),
                None => asm.ret(bpf::RET_KILL_PROCESS),
            }
        } else {
            let s = sections
                .iter()
                .find(|s| s.arch.audit() == audit)
                .expect("an audit architecture comes from a section");
            s.emit(&mut asm, default);
        }
    }
    asm.finish().map_err(Error)
}

/// What the filter compiled from `p` for `t` answers to `data`: the same
/// decision, taken from the profile directly (for tests and `stack`'s own
/// explanations).
pub fn decide(p: &Profile, t: &Target, data: &bpf::Data) -> Result<u32, Error> {
    let default = action(&p.default_action, p.default_errno_ret)?;
    let rules = rules(p, t)?;
    let arches = arches(p, t);
    let arch = arches.iter().copied().find(|a| {
        a.audit() == data.arch
            && (a.audit() != AUDIT_ARCH_X86_64 || (*a == Arch::X32) == (data.nr >= X32_SYSCALL_BIT))
    });
    Ok(match arch {
        Some(a) => section(a, &rules).decide(data, default),
        None => bpf::RET_KILL_PROCESS,
    })
}

#[cfg(test)]
mod tests;
