//! Who has served each channel: the goroutines seen completing an exchange on
//! it (a wake of a goroutine parked on the channel names the waker and the
//! woken). A goroutine parked on a channel whose only other party ever seen is
//! parked itself, waiting for something the first one holds, is half of a
//! deadlock cycle through the channel (see `lockwatch`).
use std::collections::HashMap;

/// Channels remembered at most; past it the record starts afresh (short-lived
/// reply channels would otherwise grow it without end).
const MAX_CHANNELS: usize = 1 << 16;
/// Distinct parties remembered per channel: with more, it has no single server.
const MAX_PARTIES: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct ChannelPartners {
    parties: HashMap<u64, Vec<u64>>,
}

impl ChannelPartners {
    /// `waker` completed an exchange on `chan` with `woken`.
    pub fn exchanged(&mut self, chan: u64, waker: u64, woken: u64) {
        if self.parties.len() >= MAX_CHANNELS && !self.parties.contains_key(&chan) {
            self.parties.clear();
        }
        let p = self.parties.entry(chan).or_default();
        for g in [waker, woken] {
            if p.len() <= MAX_PARTIES && !p.contains(&g) {
                p.push(g);
            }
        }
    }

    /// The one goroutine other than `goid` seen exchanging on `chan`, if there
    /// is exactly one.
    pub fn only_other(&self, chan: u64, goid: u64) -> Option<u64> {
        let p = self.parties.get(&chan)?;
        if p.len() > MAX_PARTIES {
            return None;
        }
        let mut others = p.iter().filter(|g| **g != goid);
        let one = *others.next()?;
        others.next().is_none().then_some(one)
    }

    /// Forgets an exited goroutine.
    pub fn exited(&mut self, goid: u64) {
        for p in self.parties.values_mut() {
            if p.len() <= MAX_PARTIES {
                p.retain(|g| *g != goid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_is_named_many_are_not() {
        let mut c = ChannelPartners::default();
        c.exchanged(0xc0, 2, 1);
        c.exchanged(0xc0, 1, 2);
        assert_eq!(c.only_other(0xc0, 1), Some(2));
        assert_eq!(c.only_other(0xc0, 2), Some(1));
        assert_eq!(c.only_other(0xc0, 3), None, "two others");
        c.exchanged(0xc0, 3, 1);
        c.exchanged(0xc0, 4, 1);
        assert_eq!(c.only_other(0xc0, 1), None, "a pool of senders");
        assert_eq!(c.only_other(0xd0, 1), None);
    }
}
