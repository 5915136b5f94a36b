//! nf_tables over netlink, without the `nft` program: a batch of messages
//! (built here, pure) that the kernel applies in one transaction, and the
//! socket that sends it.
//!
//! Why not `nft -f`: each run cost 20 to 30 ms here. Most of it is the
//! program itself (its libraries, its caches, megabytes of buffers zeroed),
//! and, after a transaction that deletes anything, its exit: the kernel
//! answers the close of an nf_tables socket only once what was deleted is
//! freed, an RCU grace period later (10 to 15 ms here). The socket here is
//! opened once per process and stays open.
//!
//! Numbers are those of `<linux/netfilter/nf_tables.h>`; integers in
//! attributes are big-endian, register contents as the packet has them.

use std::sync::Mutex;

use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// Attribute numbers, by object.
mod attr {
    pub const TABLE_NAME: u16 = 1;
    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_NAME: u16 = 3;
    pub const CHAIN_HOOK: u16 = 4;
    pub const CHAIN_POLICY: u16 = 5;
    pub const CHAIN_TYPE: u16 = 7;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const RULE_HANDLE: u16 = 3;
    pub const RULE_EXPRESSIONS: u16 = 4;
    pub const SET_TABLE: u16 = 1;
    pub const SET_NAME: u16 = 2;
    pub const SET_FLAGS: u16 = 3;
    pub const SET_KEY_TYPE: u16 = 4;
    pub const SET_KEY_LEN: u16 = 5;
    pub const SET_DATA_TYPE: u16 = 6;
    pub const SET_DATA_LEN: u16 = 7;
    pub const SET_ID: u16 = 10;
    pub const SET_USERDATA: u16 = 13;
    pub const ELEM_KEY: u16 = 1;
    pub const ELEM_DATA: u16 = 2;
    pub const ELEM_LIST_TABLE: u16 = 1;
    pub const ELEM_LIST_SET: u16 = 2;
    pub const ELEM_LIST_ELEMENTS: u16 = 3;
    pub const LIST_ELEM: u16 = 1;
    pub const DATA_VALUE: u16 = 1;
    pub const DATA_VERDICT: u16 = 2;
    pub const VERDICT_CODE: u16 = 1;
    pub const VERDICT_CHAIN: u16 = 2;
    pub const EXPR_NAME: u16 = 1;
    pub const EXPR_DATA: u16 = 2;
}

/// The first register (`NFT_REG_1`, 16 bytes).
pub const REG1: u32 = 1;

/// The 4-byte register `n` words past the start of the first
/// (`NFT_REG32_00 + n`): where the `n`th word of a concatenation goes.
pub const fn word(n: u32) -> u32 {
    libc::NFT_REG32_00 as u32 + n
}

/// Hook numbers (`NF_INET_*`).
pub const PREROUTING: u32 = 0;
pub const INPUT: u32 = 1;
pub const FORWARD: u32 = 2;
pub const OUTPUT: u32 = 3;
pub const POSTROUTING: u32 = 4;

/// A base chain's hook: its type (`filter`, `nat`), hook and priority.
#[derive(Clone, Copy)]
pub struct Hook {
    pub kind: &'static str,
    pub num: u32,
    pub priority: i32,
}

/// One expression of a rule, as the kernel has it.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<'a> {
    /// Packet metadata (`NFT_META_*`) into a register.
    Meta {
        key: u32,
        dreg: u32,
    },
    /// A register compared with bytes (`NFT_CMP_EQ`, `NFT_CMP_NEQ`).
    Cmp {
        op: u32,
        sreg: u32,
        data: Vec<u8>,
    },
    /// `len` bytes at `offset` of a header (`NFT_PAYLOAD_*_HEADER`).
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// A register ANDed with `mask` in place.
    Mask {
        reg: u32,
        mask: Vec<u8>,
    },
    /// Conntrack data (`NFT_CT_*`) into a register.
    Ct {
        key: u32,
        dreg: u32,
    },
    /// The route type of the destination address (`fib daddr type`).
    FibDaddrType {
        dreg: u32,
    },
    /// A register looked up in a named set; for a map, its value into `dreg`.
    Lookup {
        set: &'a str,
        sreg: u32,
        dreg: Option<u32>,
    },
    /// Destination NAT to the address and port in two registers.
    Dnat {
        family: u32,
        addr: u32,
        port: u32,
    },
    Masquerade,
    /// A packet and byte counter.
    Counter,
    /// An xtables match (`nft_compat`), as iptables-nft writes one: its
    /// name, revision and the match's own structure.
    Match {
        name: &'a str,
        rev: u32,
        info: Vec<u8>,
    },
    /// `NF_ACCEPT`, `NF_DROP`, `NFT_RETURN`, or `NFT_JUMP` to a chain.
    Verdict {
        code: i32,
        chain: Option<&'a str>,
    },
}

/// Packet metadata (`NFT_META_*`) into the first register.
pub fn meta(key: u32) -> Expr<'static> {
    Expr::Meta { key, dreg: REG1 }
}

/// The first register compared with bytes.
pub fn cmp(op: u32, data: Vec<u8>) -> Expr<'static> {
    Expr::Cmp {
        op,
        sreg: REG1,
        data,
    }
}

/// Attributes written into a message.
struct Attrs<'b>(&'b mut Vec<u8>);

impl Attrs<'_> {
    fn put(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
    }

    fn str(&mut self, ty: u16, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(ty, &b);
    }

    fn be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        f(&mut Attrs(self.0));
        // (Element lists are split to stay far below this.)
        let len = u16::try_from(self.0.len() - at).expect("a netlink attribute under 64 KiB");
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        let ty = ty | libc::NLA_F_NESTED as u16;
        self.0[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
    }

    fn value(&mut self, ty: u16, data: &[u8]) {
        self.nest(ty, |a| a.put(attr::DATA_VALUE, data));
    }

    fn expr(&mut self, e: &Expr<'_>) {
        let name = match e {
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Mask { .. } => "bitwise",
            Expr::Ct { .. } => "ct",
            Expr::FibDaddrType { .. } => "fib",
            Expr::Lookup { .. } => "lookup",
            Expr::Dnat { .. } => "nat",
            Expr::Masquerade => "masq",
            Expr::Counter => "counter",
            Expr::Match { .. } => "match",
            Expr::Verdict { .. } => "immediate",
        };
        self.nest(attr::LIST_ELEM, |a| {
            a.str(attr::EXPR_NAME, name);
            a.nest(attr::EXPR_DATA, |a| a.expr_data(e));
        });
    }

    /// An expression's own attributes (`NFTA_<NAME>_*`).
    fn expr_data(&mut self, e: &Expr<'_>) {
        match e {
            Expr::Meta { key, dreg } | Expr::Ct { key, dreg } => {
                self.be32(1, *dreg);
                self.be32(2, *key);
            }
            Expr::Cmp { op, sreg, data } => {
                self.be32(1, *sreg);
                self.be32(2, *op);
                self.value(3, data);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                self.be32(1, *dreg);
                self.be32(2, *base);
                self.be32(3, *offset);
                self.be32(4, *len);
            }
            Expr::Mask { reg, mask } => {
                self.be32(1, *reg);
                self.be32(2, *reg);
                self.be32(3, mask.len() as u32);
                self.value(4, mask);
                self.value(5, &vec![0; mask.len()]);
            }
            Expr::FibDaddrType { dreg } => {
                self.be32(1, *dreg);
                self.be32(2, 3); // NFT_FIB_RESULT_ADDRTYPE
                self.be32(3, 2); // NFTA_FIB_F_DADDR
            }
            Expr::Lookup { set, sreg, dreg } => {
                self.str(1, set);
                self.be32(2, *sreg);
                if let Some(d) = dreg {
                    self.be32(3, *d);
                }
            }
            Expr::Dnat { family, addr, port } => {
                self.be32(1, libc::NFT_NAT_DNAT as u32);
                self.be32(2, *family);
                self.be32(3, *addr);
                self.be32(5, *port);
            }
            Expr::Masquerade | Expr::Counter => {}
            Expr::Match { name, rev, info } => {
                self.str(1, name);
                self.be32(2, *rev);
                self.put(3, info);
            }
            Expr::Verdict { code, chain } => {
                self.be32(1, libc::NFT_REG_VERDICT as u32);
                self.nest(2, |a| {
                    a.nest(attr::DATA_VERDICT, |a| {
                        a.be32(attr::VERDICT_CODE, *code as u32);
                        if let Some(c) = chain {
                            a.str(attr::VERDICT_CHAIN, c);
                        }
                    })
                });
            }
        }
    }
}

/// Messages the kernel applies all or none of. Each says what it asks
/// for, so that a refusal names it.
pub struct Batch {
    buf: Vec<u8>,
    /// Where the message being written begins.
    at: usize,
    what: Vec<String>,
    /// The family (`NFPROTO_*`) of the tables its messages name.
    family: u8,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch::new()
    }
}

impl Batch {
    /// A batch for tables of family `inet` (ours).
    pub fn new() -> Batch {
        Batch::of(libc::NFPROTO_INET as u8)
    }

    /// A batch for tables of `family` (`NFPROTO_*`).
    pub fn of(family: u8) -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            at: 0,
            what: Vec::new(),
            family,
        };
        b.control(libc::NFNL_MSG_BATCH_BEGIN as u16);
        b
    }

    /// Begin or end: of nfnetlink, for nf_tables.
    fn control(&mut self, ty: u16) {
        self.header(
            ty,
            0,
            0,
            libc::NFNL_SUBSYS_NFTABLES as u16,
            "the batch".into(),
        );
        self.close();
    }

    fn header(&mut self, ty: u16, flags: u16, family: u8, res_id: u16, what: String) {
        let seq = self.what.len() as u32;
        self.what.push(what);
        self.at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf
            .extend_from_slice(&(libc::NLM_F_REQUEST as u16 | flags).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf
            .extend_from_slice(&[family, libc::NFNETLINK_V0 as u8]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    /// Writes the length of the message begun last.
    fn close(&mut self) {
        let len = (self.buf.len() - self.at) as u32;
        self.buf[self.at..self.at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// One nf_tables message (`NFT_MSG_*`) of the batch's family. The
    /// kernel answers it only if it refuses it (`finish` asks an answer of
    /// the last one, which tells the batch is done).
    fn msg(&mut self, ty: i32, flags: i32, what: String, f: impl FnOnce(&mut Attrs<'_>)) {
        let ty = (libc::NFNL_SUBSYS_NFTABLES << 8 | ty) as u16;
        let flags = flags as u16;
        let family = self.family;
        self.header(ty, flags, family, 0, what);
        f(&mut Attrs(&mut self.buf));
        self.close();
    }

    /// The table, made if missing.
    pub fn table(&mut self, table: &str) {
        self.msg(
            libc::NFT_MSG_NEWTABLE,
            libc::NLM_F_CREATE,
            format!("table {table}"),
            |a| a.str(attr::TABLE_NAME, table),
        );
    }

    pub fn delete_table(&mut self, table: &str) {
        self.msg(
            libc::NFT_MSG_DELTABLE,
            0,
            format!("deleting table {table}"),
            |a| a.str(attr::TABLE_NAME, table),
        );
    }

    /// A chain, made if missing (a base chain with `hook`, policy accept).
    pub fn chain(&mut self, table: &str, chain: &str, hook: Option<Hook>) {
        self.msg(
            libc::NFT_MSG_NEWCHAIN,
            libc::NLM_F_CREATE,
            format!("chain {chain} of table {table}"),
            |a| {
                a.str(attr::CHAIN_TABLE, table);
                a.str(attr::CHAIN_NAME, chain);
                if let Some(h) = hook {
                    a.nest(attr::CHAIN_HOOK, |a| {
                        a.be32(attr::HOOK_HOOKNUM, h.num);
                        a.be32(attr::HOOK_PRIORITY, h.priority as u32);
                    });
                    a.be32(attr::CHAIN_POLICY, libc::NF_ACCEPT as u32);
                    a.str(attr::CHAIN_TYPE, h.kind);
                }
            },
        );
    }

    /// A named set, made if missing: its key's type (as `nft` numbers
    /// types, for listings) and length; for a map, its value's. A key
    /// that `nft` is to list in host byte order (a string) says so.
    pub fn set(
        &mut self,
        table: &str,
        set: &str,
        key: (u32, u32),
        value: Option<(u32, u32)>,
        host_order: bool,
    ) {
        let id = self.what.len() as u32;
        self.msg(
            libc::NFT_MSG_NEWSET,
            libc::NLM_F_CREATE,
            format!("set {set} of table {table}"),
            |a| {
                a.str(attr::SET_TABLE, table);
                a.str(attr::SET_NAME, set);
                let flags = if value.is_some() {
                    libc::NFT_SET_MAP
                } else {
                    0
                };
                a.be32(attr::SET_FLAGS, flags as u32);
                a.be32(attr::SET_KEY_TYPE, key.0);
                a.be32(attr::SET_KEY_LEN, key.1);
                if let Some((ty, len)) = value {
                    a.be32(attr::SET_DATA_TYPE, ty);
                    a.be32(attr::SET_DATA_LEN, len);
                }
                a.be32(attr::SET_ID, id);
                if host_order {
                    // libnftnl's user data: the key's byte order (0), 4
                    // bytes, host order (1).
                    let mut ud = vec![0, 4];
                    ud.extend_from_slice(&1u32.to_ne_bytes());
                    a.put(attr::SET_USERDATA, &ud);
                }
            },
        );
    }

    /// Every rule of every chain of the table deleted (`flush table`).
    pub fn flush_rules(&mut self, table: &str) {
        self.msg(
            libc::NFT_MSG_DELRULE,
            0,
            format!("flushing table {table}"),
            |a| a.str(attr::RULE_TABLE, table),
        );
    }

    /// The rule of a chain with this handle deleted; `text` says it.
    pub fn delete_rule(&mut self, table: &str, chain: &str, handle: u64, text: &str) {
        self.msg(
            libc::NFT_MSG_DELRULE,
            0,
            format!("deleting rule `{text}` of chain {chain} of table {table}"),
            |a| {
                a.str(attr::RULE_TABLE, table);
                a.str(attr::RULE_CHAIN, chain);
                a.put(attr::RULE_HANDLE, &handle.to_be_bytes());
            },
        );
    }

    /// Every element of a set deleted.
    pub fn flush_set(&mut self, table: &str, set: &str) {
        self.msg(
            libc::NFT_MSG_DELSETELEM,
            0,
            format!("flushing set {set} of table {table}"),
            |a| {
                a.str(attr::ELEM_LIST_TABLE, table);
                a.str(attr::ELEM_LIST_SET, set);
            },
        );
    }

    /// A rule appended to a chain; `text` says it as `nft` would.
    pub fn rule(&mut self, table: &str, chain: &str, text: &str, exprs: &[Expr<'_>]) {
        self.new_rule(table, chain, text, exprs, libc::NLM_F_APPEND);
    }

    /// A rule put first in a chain (`iptables -I`).
    pub fn insert_rule(&mut self, table: &str, chain: &str, text: &str, exprs: &[Expr<'_>]) {
        self.new_rule(table, chain, text, exprs, 0);
    }

    fn new_rule(&mut self, table: &str, chain: &str, text: &str, exprs: &[Expr<'_>], at: i32) {
        self.msg(
            libc::NFT_MSG_NEWRULE,
            libc::NLM_F_CREATE | at,
            format!("rule `{text}` of chain {chain} of table {table}"),
            |a| {
                a.str(attr::RULE_TABLE, table);
                a.str(attr::RULE_CHAIN, chain);
                a.nest(attr::RULE_EXPRESSIONS, |a| {
                    for e in exprs {
                        a.expr(e);
                    }
                });
            },
        );
    }

    /// Elements added to a set (key, and value for a map) or, with
    /// `add` false, deleted from it (by key).
    pub fn elements(
        &mut self,
        table: &str,
        set: &str,
        add: bool,
        elems: &[(Vec<u8>, Option<Vec<u8>>)],
    ) {
        let (ty, flags, verb) = match add {
            true => (libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE, "adding"),
            false => (libc::NFT_MSG_DELSETELEM, 0, "deleting"),
        };
        // A message's list of elements is one attribute, of 64 KiB at most:
        // 256 of ours (an IPv6 one is 64 bytes) per message.
        for chunk in elems.chunks(256) {
            self.msg(
                ty,
                flags,
                format!(
                    "{verb} elements ({}) of set {set} of table {table}",
                    chunk.len()
                ),
                |a| {
                    a.str(attr::ELEM_LIST_TABLE, table);
                    a.str(attr::ELEM_LIST_SET, set);
                    a.nest(attr::ELEM_LIST_ELEMENTS, |a| {
                        for (key, value) in chunk {
                            a.nest(attr::LIST_ELEM, |a| {
                                a.value(attr::ELEM_KEY, key);
                                if let Some(v) = value {
                                    a.value(attr::ELEM_DATA, v);
                                }
                            });
                        }
                    });
                },
            );
        }
    }

    /// The messages, ended; and what each says, by sequence number. The
    /// last before the end asks for an answer.
    pub fn finish(mut self) -> (Vec<u8>, Vec<String>) {
        let flags = self.at + 6;
        let acked =
            u16::from_ne_bytes([self.buf[flags], self.buf[flags + 1]]) | libc::NLM_F_ACK as u16;
        self.buf[flags..flags + 2].copy_from_slice(&acked.to_ne_bytes());
        self.control(libc::NFNL_MSG_BATCH_END as u16);
        (self.buf, self.what)
    }

    /// Whether nothing was asked besides the batch's begin.
    pub fn is_empty(&self) -> bool {
        self.what.len() == 1
    }
}

/// An interface name as the kernel compares it: 16 bytes, zero-padded.
pub fn ifname(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

/// A netlink socket to nf_tables, in the network namespace of the thread
/// that opened it.
pub struct Conn {
    socket: Socket,
    /// The sequence number the next batch begins at: answers to an earlier
    /// batch are never taken for this one's.
    seq: std::cell::Cell<u32>,
}

/// Why a batch was not applied.
#[derive(Debug)]
pub enum Fault {
    /// The kernel refused the message that says this (none was applied).
    Refused(String, std::io::Error),
    /// The exchange itself failed: the socket may hold answers not read.
    Io(std::io::Error),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Refused(what, e) => write!(f, "the kernel refused {what}: {e}"),
            Fault::Io(e) => write!(f, "nf_tables over netlink: {e}"),
        }
    }
}

/// What [`Conn::read_until`] does after a message.
enum Next {
    More,
    /// That was the last one awaited.
    Done,
    /// Only what is queued already is read.
    Drain,
}

/// Whether a message is an answer (`NLMSG_ERROR`) with its error code.
fn is_error(msg: &[u8]) -> bool {
    msg.len() >= 20 && u16::from_ne_bytes([msg[4], msg[5]]) == libc::NLMSG_ERROR as u16
}

impl Conn {
    pub fn open() -> std::io::Result<Conn> {
        use nix::sys::socket::{setsockopt, sockopt};
        let mut s = Socket::new(NETLINK_NETFILTER)?;
        s.bind_auto()?;
        s.connect(&SocketAddr::new(0, 0))?;
        // Answers carry the header of what they answer, not all of it.
        s.set_cap_ack(true)?;
        // A batch goes in one message: room for thousands of elements
        // (where forcing is not ours to do, the default stays).
        let _ = setsockopt(&s, sockopt::SndBufForce, &(4 << 20));
        // No answer within this is a kernel that lost the batch.
        setsockopt(
            &s,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(10, 0),
        )?;
        Ok(Conn {
            socket: s,
            seq: std::cell::Cell::new(1),
        })
    }

    /// Sends the batch: Ok once the kernel has applied all of it, else
    /// why it applied none. The kernel handles a batch within the `send`
    /// and answers each message it refuses, then the last (asked for); or,
    /// where it takes none of it (no right to, a failed commit), the begin.
    pub fn commit(&self, batch: Batch) -> Result<(), Fault> {
        if batch.is_empty() {
            return Ok(());
        }
        let (mut buf, what) = batch.finish();
        let base = self.seq.get();
        let n = what.len() as u32;
        self.seq.set(base.wrapping_add(n));
        let mut at = 0;
        for i in 0..n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            buf[at + 8..at + 12].copy_from_slice(&base.wrapping_add(i).to_ne_bytes());
            at += len;
        }
        self.socket.send(&buf, 0).map_err(Fault::Io)?;
        // The last answered message: the one before the end.
        let last = n - 2;
        let mut refused = None;
        self.read_until(|msg| {
            let seq =
                u32::from_ne_bytes(msg[8..12].try_into().expect("4 bytes")).wrapping_sub(base);
            if !is_error(msg) || seq >= n {
                return Next::More;
            }
            let error = i32::from_ne_bytes(msg[16..20].try_into().expect("4 bytes"));
            if error != 0 && refused.is_none() {
                refused = Some((seq as usize, -error));
            }
            match seq {
                s if s == last => Next::Done,
                // The begin refused: whatever else comes is queued
                // already, and read without waiting.
                0 if error != 0 => Next::Drain,
                _ => Next::More,
            }
        })?;
        match refused {
            Some((seq, errno)) => Err(Fault::Refused(
                what[seq].clone(),
                std::io::Error::from_raw_os_error(errno),
            )),
            None => Ok(()),
        }
    }

    /// Reads the messages the socket gets, each whole (header first) to
    /// `take`, until it says the last awaited one came, or, once it has
    /// said to drain, until nothing more is queued.
    fn read_until(&self, mut take: impl FnMut(&[u8]) -> Next) -> Result<(), Fault> {
        let mut data = vec![0u8; 1 << 16];
        let mut draining = false;
        loop {
            let flags = if draining { libc::MSG_DONTWAIT } else { 0 };
            let got = match self.socket.recv(&mut &mut data[..], flags) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if draining && e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(Fault::Io(e)),
            };
            let mut at = 0;
            while at + 16 <= got {
                let len =
                    u32::from_ne_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
                if len < 16 || at + len > got {
                    break;
                }
                match take(&data[at..at + len]) {
                    Next::More => {}
                    Next::Done => return Ok(()),
                    Next::Drain => draining = true,
                }
                at += len.next_multiple_of(4);
            }
        }
    }
}

/// A rule as the kernel lists it: its handle, and each of its expressions
/// by name with its attributes (`NFTA_<NAME>_*`, as sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub handle: u64,
    pub exprs: Vec<(String, Attributes)>,
}

/// Attributes by number, as sent.
pub type Attributes = Vec<(u16, Vec<u8>)>;

impl Listed {
    /// Attribute `ty` of the first expression called `name`.
    pub fn attr(&self, name: &str, ty: u16) -> Option<&[u8]> {
        let (_, attrs) = self.exprs.iter().find(|(n, _)| n == name)?;
        attrs.iter().find(|(t, _)| *t == ty).map(|(_, v)| &v[..])
    }

    /// Attribute `ty` of the first expression called `name`, a value
    /// (`NFTA_DATA_VALUE` inside).
    pub fn value(&self, name: &str, ty: u16) -> Option<&[u8]> {
        attrs(self.attr(name, ty)?)
            .into_iter()
            .find(|(t, _)| *t == attr::DATA_VALUE)
            .map(|(_, v)| v)
    }
}

/// The attributes in `b`: type (flags off) and payload each.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & libc::NLA_TYPE_MASK as u16;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

/// A listed rule from a `NFT_MSG_NEWRULE` message's attributes.
fn listed(body: &[u8]) -> Listed {
    let mut rule = Listed {
        handle: 0,
        exprs: Vec::new(),
    };
    for (ty, v) in attrs(body) {
        match ty {
            attr::RULE_HANDLE if v.len() == 8 => {
                rule.handle = u64::from_be_bytes(v.try_into().expect("8 bytes"))
            }
            attr::RULE_EXPRESSIONS => {
                for (_, e) in attrs(v) {
                    let e = attrs(e);
                    let name = e.iter().find(|(t, _)| *t == attr::EXPR_NAME);
                    let data = e.iter().find(|(t, _)| *t == attr::EXPR_DATA);
                    let name = name.map(|(_, n)| String::from_utf8_lossy(n));
                    rule.exprs.push((
                        name.unwrap_or_default().trim_end_matches('\0').to_string(),
                        data.map(|(_, d)| attrs(d))
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(t, v)| (t, v.to_vec()))
                            .collect(),
                    ));
                }
            }
            _ => {}
        }
    }
    rule
}

impl Conn {
    /// The rules of a chain, in order; `None` where the table or the chain
    /// is not there. The chain is asked for, then its rules listed (a
    /// listing finds nothing, not an error, where the chain is missing),
    /// in one send.
    pub fn rules(
        &self,
        family: u8,
        table: &str,
        chain: &str,
    ) -> Result<Option<Vec<Listed>>, Fault> {
        // A listing cut by a change of the rules says so: taken again.
        for _ in 0..3 {
            let seq = self.seq.get();
            self.seq.set(seq.wrapping_add(2));
            let mut b = Batch::of(family);
            b.buf.clear();
            b.msg(libc::NFT_MSG_GETCHAIN, 0, String::new(), |a| {
                a.str(attr::CHAIN_TABLE, table);
                a.str(attr::CHAIN_NAME, chain);
            });
            b.msg(
                libc::NFT_MSG_GETRULE,
                libc::NLM_F_DUMP,
                String::new(),
                |a| {
                    a.str(attr::RULE_TABLE, table);
                    a.str(attr::RULE_CHAIN, chain);
                },
            );
            let second = b.at;
            b.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
            b.buf[second + 8..second + 12].copy_from_slice(&seq.wrapping_add(1).to_ne_bytes());
            self.socket.send(&b.buf, 0).map_err(Fault::Io)?;
            let mut rules = Vec::new();
            let mut missing = false;
            let mut refused = None;
            let mut cut = false;
            let rule = (libc::NFNL_SUBSYS_NFTABLES << 8 | libc::NFT_MSG_NEWRULE) as u16;
            self.read_until(|msg| {
                let ty = u16::from_ne_bytes([msg[4], msg[5]]);
                let flags = u16::from_ne_bytes([msg[6], msg[7]]);
                let which =
                    u32::from_ne_bytes(msg[8..12].try_into().expect("4 bytes")).wrapping_sub(seq);
                if which >= 2 {
                    return Next::More;
                }
                cut |= flags & libc::NLM_F_DUMP_INTR as u16 != 0;
                if is_error(msg) {
                    match -i32::from_ne_bytes(msg[16..20].try_into().expect("4 bytes")) {
                        0 => {}
                        libc::ENOENT => missing = true,
                        // Said once the listing's end is read: nothing of
                        // it is left on the socket.
                        errno => refused = refused.or(Some(errno)),
                    }
                    if which == 1 {
                        return Next::Done;
                    }
                } else if which == 1 && ty == libc::NLMSG_DONE as u16 {
                    return Next::Done;
                } else if which == 1 && ty == rule && msg.len() >= 20 {
                    rules.push(listed(&msg[20..]));
                }
                Next::More
            })?;
            if let Some(errno) = refused {
                return Err(Fault::Refused(
                    format!("listing chain {chain} of table {table}"),
                    std::io::Error::from_raw_os_error(errno),
                ));
            }
            if missing {
                return Ok(None);
            }
            if !cut {
                return Ok(Some(rules));
            }
        }
        Err(Fault::Io(std::io::Error::other(format!(
            "the rules of chain {chain} changed while listed, three times"
        ))))
    }
}

/// This process's socket, opened at first use and kept (see the module's
/// note on why it is never closed).
static CONN: Mutex<Option<Conn>> = Mutex::new(None);

/// Sends the batch on this process's socket.
pub fn commit(batch: Batch) -> Result<(), String> {
    on_conn(|c| c.commit(batch))
}

/// The rules of a chain (see [`Conn::rules`]), on this process's socket.
pub fn rules(family: u8, table: &str, chain: &str) -> Result<Option<Vec<Listed>>, String> {
    on_conn(|c| c.rules(family, table, chain))
}

/// `f` on this process's socket; a socket whose exchange failed is not
/// kept (it may hold answers not read).
fn on_conn<T>(f: impl FnOnce(&Conn) -> Result<T, Fault>) -> Result<T, String> {
    let mut conn = CONN.lock().unwrap_or_else(|p| p.into_inner());
    let c = match conn.take() {
        Some(c) => c,
        None => {
            Conn::open().map_err(|e| format!("cannot open a netlink socket to nf_tables: {e}"))?
        }
    };
    let done = f(&c);
    if !matches!(done, Err(Fault::Io(_))) {
        *conn = Some(c);
    }
    done.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_framed_and_each_message_is_numbered() {
        let mut b = Batch::new();
        assert!(b.is_empty());
        b.table("t");
        b.rule(
            "t",
            "c",
            "drop",
            &[Expr::Verdict {
                code: libc::NF_DROP,
                chain: None,
            }],
        );
        assert!(!b.is_empty());
        let (buf, what) = b.finish();
        assert_eq!(what.len(), 4);
        assert_eq!(what[1], "table t");
        // Walk the messages: lengths add up, sequence numbers count, and
        // only the begin and end are of nfnetlink itself.
        let mut at = 0;
        let mut types = Vec::new();
        while at < buf.len() {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
            let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap());
            assert_eq!(seq as usize, types.len());
            assert_eq!(len % 4, 0);
            types.push(ty);
            at += len;
        }
        assert_eq!(at, buf.len());
        let nft = |m: i32| (libc::NFNL_SUBSYS_NFTABLES << 8 | m) as u16;
        assert_eq!(
            types,
            [
                libc::NFNL_MSG_BATCH_BEGIN as u16,
                nft(libc::NFT_MSG_NEWTABLE),
                nft(libc::NFT_MSG_NEWRULE),
                libc::NFNL_MSG_BATCH_END as u16
            ]
        );
        // The table message: its name, NUL-ended and padded.
        let table = &buf[20..];
        let body = &table[20..];
        assert_eq!(&body[..4], &[6, 0, 1, 0]);
        assert_eq!(&body[4..8], b"t\0\0\0");
    }

    #[test]
    fn interface_names_are_sixteen_bytes() {
        assert_eq!(ifname("stk-a").len(), 16);
        assert_eq!(&ifname("stk-a")[..6], b"stk-a\0");
    }
}
