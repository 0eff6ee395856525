//! The walk of `dwarf`, for a binary without DWARF (`-ldflags=-w`): the same
//! [`Findings`] from the pclntab. Each function's inline tree
//! (`FUNCDATA_InlTree`) names its inlined calls, its `PCDATA_InlTreeIndex` table
//! gives the code of each (a call's code includes its own inlined calls', as a
//! DWARF inlined subroutine's ranges do), and each call's `parentPc` is an
//! instruction with the call's source position. The mutex layouts come from the
//! table of Go versions (`crate::layouts`). Like `dwarf`, it never reads machine
//! code.

use std::collections::HashMap;

use super::classify::{classify, Class};
use super::findings::{Findings, Layout, OolFunc, RawSite};
use crate::pclntab::Pclntab;

#[derive(Clone, Copy)]
enum Collector {
    Site(usize),
    Ool(usize),
}

pub(super) fn findings(tab: &Pclntab<'_>, layout: Layout) -> Findings {
    let mut f = Findings {
        sites: Vec::new(),
        ool: Vec::new(),
        target_funcs: HashMap::new(),
        sync_scopes: Vec::new(),
        layout,
    };
    for i in 0..tab.len() {
        let Some(info) = tab.inline_info(i) else {
            continue;
        };
        let name = info.func.name;
        let class = classify(name);
        let phys = (info.func.entry, info.code_end);
        let mut phys_collector = None;
        if let Class::Target(t) = class {
            f.target_funcs.insert(phys.0, t);
            if !t.internal {
                f.ool.push(OolFunc {
                    target: t,
                    name: name.into(),
                    ranges: vec![phys],
                    low: phys.0,
                    nested: Vec::new(),
                    file: info.file.to_string(),
                    line: info.start_line,
                });
                phys_collector = Some(Collector::Ool(f.ool.len() - 1));
            }
        }
        if class.is_sync_scope() {
            f.sync_scopes.push(phys);
        }
        let nodes = &info.nodes;
        if nodes.is_empty() {
            continue;
        }
        let classes: Vec<Class> = nodes.iter().map(|n| classify(n.function)).collect();
        // Parents before children, as the DWARF walk meets them.
        let depth = |mut n: usize| {
            let mut d = 0;
            while let Some(p) = nodes[n].parent {
                d += 1;
                n = p;
                if d > nodes.len() {
                    break;
                }
            }
            d
        };
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&n| (depth(n), nodes[n].ranges.first().map(|r| r.0)));
        let mut collectors: Vec<Option<Collector>> = vec![None; nodes.len()];
        for &n in &order {
            let node = &nodes[n];
            match classes[n] {
                Class::Target(t) => {
                    let enclosing = node.parent.map_or(class, |p| classes[p]);
                    if enclosing.is_sync_scope() {
                        // Part of another lock method's implementation: the
                        // nearest enclosing site or method keeps it.
                        let mut at = node.parent;
                        loop {
                            let (c, cls) = match at {
                                Some(p) => (collectors[p], classes[p]),
                                None => (phys_collector, class),
                            };
                            if let Some(c) = c {
                                let nested = (t, node.ranges.clone());
                                match c {
                                    Collector::Site(k) => f.sites[k].nested.push(nested),
                                    Collector::Ool(k) => f.ool[k].nested.push(nested),
                                }
                                break;
                            }
                            if !cls.is_sync_scope() {
                                break;
                            }
                            match at {
                                Some(p) => at = nodes[p].parent,
                                None => break,
                            }
                        }
                    } else {
                        // The call where the user wrote it: through inlined
                        // forwarding wrappers.
                        let (mut file, mut line) = (node.call_file, node.call_line);
                        let mut at = node.parent;
                        let caller = loop {
                            match at {
                                Some(p) if classes[p] == Class::Wrapper => {
                                    file = nodes[p].call_file;
                                    line = nodes[p].call_line;
                                    at = nodes[p].parent;
                                }
                                Some(p) => break nodes[p].function,
                                None => break name,
                            }
                        };
                        f.sites.push(RawSite {
                            target: t,
                            ranges: node.ranges.clone(),
                            nested: Vec::new(),
                            caller: caller.into(),
                            file: file.to_string(),
                            line,
                            phys,
                        });
                        collectors[n] = Some(Collector::Site(f.sites.len() - 1));
                    }
                    f.sync_scopes.extend_from_slice(&node.ranges);
                }
                Class::SyncImpl => f.sync_scopes.extend_from_slice(&node.ranges),
                _ => {}
            }
        }
    }
    f
}
