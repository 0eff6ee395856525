//! From the walk's findings to the scan's sites: each inlined copy gets its
//! anchor, each out-of-line method its entry (or, for a Try method nobody
//! inside `sync` calls, its deciding CAS), the entries get the return
//! addresses of `sync`'s own calls into them, and one site is kept per probe
//! address.  It neither reads DWARF or the pclntab nor looks for registers
//! itself (it takes the [`Findings`] of either walk and asks `anchor`), so
//! that it is the only place that sees all sites at once and can refuse two
//! different ones on one address.  `Findings::finish` lives here, so that
//! neither walk depends on `anchor`.

use std::collections::{BTreeMap, HashMap};

use iced_x86::{FlowControl, Instruction, OpKind};

use super::anchor::{after_stack_check, AnchorCtx};
use super::callers::user_calls;
use super::findings::Findings;
use super::text::{fmt_ranges, merge_ranges, TextMap};
use super::{Gpr, LockSite, LockSiteScan, Outcome};
use crate::pclntab::Pclntab;

impl Findings {
    pub(super) fn finish(self, text: &TextMap<'_>, tab: Option<&Pclntab<'_>>) -> LockSiteScan {
        let layout = self.layout;
        let mut out = LockSiteScan::default();

        // Calls from sync's own code into probed method entries.
        let entry_index: HashMap<u64, usize> = self
            .ool
            .iter()
            .enumerate()
            .map(|(i, f)| (f.low, i))
            .collect();
        let mut ignore: Vec<Vec<u64>> = vec![Vec::new(); self.ool.len()];
        for (lo, hi) in merge_ranges(&self.sync_scopes) {
            let mut insns = Vec::new();
            text.decode(lo, hi, &mut insns);
            for ins in &insns {
                if ins.flow_control() == FlowControl::Call && ins.op0_kind() == OpKind::NearBranch64
                {
                    if let Some(&i) = entry_index.get(&ins.near_branch_target()) {
                        ignore[i].push(ins.next_ip());
                    }
                }
            }
        }

        let claimed = merge_ranges(
            &self
                .sites
                .iter()
                .flat_map(|s| {
                    s.ranges
                        .iter()
                        .chain(s.nested.iter().flat_map(|n| n.1.iter()))
                })
                .copied()
                .collect::<Vec<_>>(),
        );
        let mut phys_cache: HashMap<u64, Vec<Instruction>> = HashMap::new();
        let mut sites: BTreeMap<u64, LockSite> = BTreeMap::new();
        let mut add = |out: &mut LockSiteScan, s: LockSite| {
            if let Some(prev) = sites.get(&s.probe_vaddr) {
                if prev.op != s.op
                    || prev.kind != s.kind
                    || prev.reg != s.reg
                    || prev.adjust != s.adjust
                {
                    out.unresolved.push(format!(
                        "{:?} ({:?}) in {} at {}:{} shares probe {:#x} with a different site; dropped",
                        s.op, s.kind, s.caller, s.file, s.line, s.probe_vaddr
                    ));
                }
                return;
            }
            sites.insert(s.probe_vaddr, s);
        };

        for s in &self.sites {
            let ctx = AnchorCtx {
                text,
                layout: &layout,
                target_funcs: &self.target_funcs,
                allow_call: true,
                claimed: &claimed,
            };
            match ctx.anchor(s.target, &s.ranges, &s.nested, s.phys, &mut phys_cache) {
                Ok(a) => add(
                    &mut out,
                    LockSite {
                        op: s.target.op,
                        kind: s.target.kind,
                        probe_vaddr: a.probe,
                        reg: a.reg,
                        adjust: a.adjust,
                        caller: s.caller.to_string(),
                        file: s.file.clone(),
                        line: s.line,
                        inlined: true,
                        outcome: a.outcome,
                        ignore_return_addrs: Vec::new(),
                        callers: Vec::new(),
                        class: None,
                    },
                ),
                Err(why) => out.unresolved.push(format!(
                    "{:?} ({:?}) in {} at {}:{} [{}]: {}",
                    s.target.op,
                    s.target.kind,
                    s.caller,
                    s.file,
                    s.line,
                    fmt_ranges(&s.ranges),
                    why
                )),
            }
        }

        // The user's calls into each entry (Try methods excepted: theirs may be
        // probed mid-body, where no return address is on the stack top).
        let mut callers = match tab {
            Some(tab) => user_calls(text, tab, &entry_index, self.ool.len()),
            None => vec![Vec::new(); self.ool.len()],
        };
        for (i, f) in self.ool.iter().enumerate() {
            let mut ign = std::mem::take(&mut ignore[i]);
            ign.sort_unstable();
            ign.dedup();
            let base = LockSite {
                op: f.target.op,
                kind: f.target.kind,
                probe_vaddr: f.low,
                reg: Gpr::Rax,
                adjust: 0,
                caller: f.name.to_string(),
                file: f.file.clone(),
                line: f.line,
                inlined: false,
                outcome: Outcome::Performed,
                ignore_return_addrs: Vec::new(),
                callers: Vec::new(),
                class: None,
            };
            if f.target.op.is_try() {
                // Probe the deciding CAS in the body when no caller has to be
                // filtered out (a mid-body probe cannot see the return address).
                if ign.is_empty() {
                    let ctx = AnchorCtx {
                        text,
                        layout: &layout,
                        target_funcs: &self.target_funcs,
                        allow_call: false,
                        claimed: &claimed,
                    };
                    let phys = (f.low, f.ranges.iter().map(|r| r.1).max().unwrap_or(f.low));
                    if let Ok(a) = ctx.anchor(f.target, &f.ranges, &f.nested, phys, &mut phys_cache)
                    {
                        if a.outcome == Outcome::IfZf {
                            add(
                                &mut out,
                                LockSite {
                                    probe_vaddr: a.probe,
                                    reg: a.reg,
                                    adjust: a.adjust,
                                    outcome: a.outcome,
                                    ..base
                                },
                            );
                            continue;
                        }
                    }
                }
                add(
                    &mut out,
                    LockSite {
                        probe_vaddr: after_stack_check(text, f.low),
                        outcome: Outcome::Unknown,
                        ignore_return_addrs: ign,
                        ..base
                    },
                );
            } else {
                add(
                    &mut out,
                    LockSite {
                        probe_vaddr: after_stack_check(text, f.low),
                        ignore_return_addrs: ign,
                        callers: std::mem::take(&mut callers[i]),
                        ..base
                    },
                );
            }
        }

        out.sites = sites.into_values().collect();
        out
    }
}
