//! Classic BPF as seccomp runs it: the few instructions a filter needs, an
//! assembler with labels, and an interpreter (so a compiled program can be
//! checked without a kernel).

/// One instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

/// `struct seccomp_data`: the offsets a filter loads from.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
/// Argument `i`'s low and high 32-bit words (little endian).
pub fn off_arg(i: u32, high: bool) -> u32 {
    16 + 8 * i + if high { 4 } else { 0 }
}

/// Return values (`SECCOMP_RET_*`).
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// The kernel's limit on a filter's length (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Debug)]
enum Op {
    Load(u32),
    And(u32),
    Jump(Cmp, u32, Label, Label),
    Goto(Label),
    Ret(u32),
    Mark(Label),
}

/// Builds a program with symbolic jumps; `finish` resolves them.
#[derive(Debug, Default)]
pub struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    pub fn load(&mut self, offset: u32) {
        self.ops.push(Op::Load(offset));
    }
    pub fn and(&mut self, mask: u32) {
        self.ops.push(Op::And(mask));
    }
    /// `if A <cmp> k goto yes else goto no` (both forward).
    pub fn jump(&mut self, cmp: Cmp, k: u32, yes: Label, no: Label) {
        self.ops.push(Op::Jump(cmp, k, yes, no));
    }
    pub fn goto(&mut self, to: Label) {
        self.ops.push(Op::Goto(to));
    }
    pub fn ret(&mut self, value: u32) {
        self.ops.push(Op::Ret(value));
    }
    /// Places `l` at the next instruction.
    pub fn mark(&mut self, l: Label) {
        self.ops.push(Op::Mark(l));
    }

    /// The instructions, or what makes them impossible (a conditional
    /// jump longer than 255, or a program over the kernel's limit).
    pub fn finish(self) -> Result<Vec<Insn>, String> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for op in &self.ops {
            match op {
                Op::Mark(Label(l)) => at[*l] = pc,
                _ => pc += 1,
            }
        }
        if pc > MAX_INSNS {
            return Err(format!(
                "the filter needs {pc} instructions, over the kernel's limit of {MAX_INSNS}"
            ));
        }
        let mut out = Vec::with_capacity(pc);
        let offset = |from: usize, Label(l): Label| -> Result<usize, String> {
            let to = at[l];
            if to == usize::MAX || to <= from {
                return Err("internal: jump to an unplaced or earlier label".into());
            }
            Ok(to - from - 1)
        };
        for op in &self.ops {
            let here = out.len();
            let insn = |code, jt, jf, k| Insn { code, jt, jf, k };
            out.push(match *op {
                Op::Mark(_) => continue,
                Op::Load(k) => insn(LD_W_ABS, 0, 0, k),
                Op::And(k) => insn(ALU_AND_K, 0, 0, k),
                Op::Ret(k) => insn(RET_K, 0, 0, k),
                Op::Goto(l) => insn(JMP_JA, 0, 0, offset(here, l)? as u32),
                Op::Jump(cmp, k, yes, no) => {
                    let code = match cmp {
                        Cmp::Eq => JMP_JEQ_K,
                        Cmp::Gt => JMP_JGT_K,
                        Cmp::Ge => JMP_JGE_K,
                    };
                    let short = |l| {
                        offset(here, l).and_then(|o| {
                            u8::try_from(o)
                                .map_err(|_| "internal: conditional jump too long".into())
                        })
                    };
                    insn(code, short(yes)?, short(no)?, k)
                }
            });
        }
        Ok(out)
    }
}

/// What the kernel hands a filter (`struct seccomp_data`, without `ip`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Data {
    fn word(&self, offset: u32) -> Option<u32> {
        match offset {
            OFF_NR => Some(self.nr),
            OFF_ARCH => Some(self.arch),
            16..=63 if offset.is_multiple_of(4) => {
                let a = self.args[(offset as usize - 16) / 8];
                Some(if offset % 8 == 4 {
                    (a >> 32) as u32
                } else {
                    a as u32
                })
            }
            _ => None,
        }
    }
}

/// Runs `prog` on `data` as the kernel would, for the instructions this
/// module emits; `None` for a program the kernel would refuse.
pub fn run(prog: &[Insn], data: &Data) -> Option<u32> {
    run_counted(prog, data).map(|(ret, _)| ret)
}

/// [`run`], with the number of instructions it took.
pub fn run_counted(prog: &[Insn], data: &Data) -> Option<(u32, usize)> {
    let (mut a, mut pc, mut steps) = (0u32, 0usize, 0usize);
    loop {
        let i = prog.get(pc)?;
        pc += 1;
        steps += 1;
        match i.code {
            LD_W_ABS => a = data.word(i.k)?,
            ALU_AND_K => a &= i.k,
            RET_K => return Some((i.k, steps)),
            JMP_JA => pc += i.k as usize,
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                let taken = match i.code {
                    JMP_JEQ_K => a == i.k,
                    JMP_JGT_K => a > i.k,
                    _ => a >= i.k,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_forward_and_long_conditional_jumps_are_refused() {
        let mut a = Asm::default();
        let (yes, no) = (a.label(), a.label());
        a.load(OFF_NR);
        a.jump(Cmp::Eq, 7, yes, no);
        a.mark(yes);
        a.ret(RET_ALLOW);
        a.mark(no);
        a.ret(RET_ERRNO | 1);
        let p = a.finish().unwrap();
        assert_eq!(
            p[1],
            Insn {
                code: JMP_JEQ_K,
                jt: 0,
                jf: 1,
                k: 7
            }
        );
        assert_eq!(
            run(
                &p,
                &Data {
                    nr: 7,
                    ..Data::default()
                }
            ),
            Some(RET_ALLOW)
        );
        assert_eq!(
            run(
                &p,
                &Data {
                    nr: 8,
                    ..Data::default()
                }
            ),
            Some(RET_ERRNO | 1)
        );

        let mut a = Asm::default();
        let far = a.label();
        a.jump(Cmp::Eq, 0, far, far);
        for _ in 0..300 {
            a.ret(0);
        }
        a.mark(far);
        a.ret(0);
        assert!(a.finish().unwrap_err().contains("too long"));
    }
}
