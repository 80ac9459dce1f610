//! Which server gets the next chunk.
//!
//! **Smooth weighted round robin** among the *available* regular servers (see
//! [`super::health`]): every pick adds each candidate's `weight` to its running score, takes
//! the candidate with the highest score and subtracts the sum of the candidates' weights from
//! it. Over any run of picks with the same candidates, each server gets exactly its share
//! (weights 60/40 → 3 of every 5 chunks to the first), interleaved rather than in bursts —
//! deterministic where Fluentd draws at random with the same proportions.
//!
//! **Standby**: servers with `standby true` are candidates only while **no** regular server is
//! available; the first regular server that recovers takes the traffic back. A server with
//! `weight 0` gets traffic only when it is the last available one of its class.

use std::sync::Mutex;

/// One server as the balancer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub weight: u32,
    pub standby: bool,
}

/// Smooth weighted round robin with standby servers.
#[derive(Debug)]
pub struct Balancer {
    slots: Vec<Slot>,
    scores: Mutex<Vec<i64>>,
}

impl Balancer {
    pub fn new(slots: Vec<Slot>) -> Self {
        let n = slots.len();
        Self {
            slots,
            scores: Mutex::new(vec![0; n]),
        }
    }

    /// The index of the server for the next chunk among those for which `available(i)` is
    /// true: regular servers first, standby ones only when no regular one is available.
    /// `None` when no server is available.
    pub fn pick(&self, available: impl Fn(usize) -> bool) -> Option<usize> {
        let avail: Vec<usize> = (0..self.slots.len()).filter(|&i| available(i)).collect();
        let regular: Vec<usize> = avail
            .iter()
            .copied()
            .filter(|&i| !self.slots[i].standby)
            .collect();
        let class = if regular.is_empty() { avail } else { regular };
        if class.is_empty() {
            return None;
        }
        let weighted: Vec<usize> = class
            .iter()
            .copied()
            .filter(|&i| self.slots[i].weight > 0)
            .collect();
        if weighted.is_empty() {
            return Some(class[0]);
        }
        let mut scores = self.scores.lock().unwrap();
        let total: i64 = weighted.iter().map(|&i| self.slots[i].weight as i64).sum();
        let mut best = weighted[0];
        for &i in &weighted {
            scores[i] += self.slots[i].weight as i64;
            if scores[i] > scores[best] {
                best = i;
            }
        }
        scores[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(v: &[(u32, bool)]) -> Vec<Slot> {
        v.iter()
            .map(|&(weight, standby)| Slot { weight, standby })
            .collect()
    }

    #[test]
    fn weights_are_exact_over_a_period() {
        let b = Balancer::new(slots(&[(60, false), (40, false)]));
        let mut n = [0; 2];
        for _ in 0..500 {
            n[b.pick(|_| true).unwrap()] += 1;
        }
        assert_eq!(n, [300, 200]);
    }

    #[test]
    fn standby_only_when_every_regular_is_down() {
        let b = Balancer::new(slots(&[(60, false), (60, false), (60, true)]));
        for _ in 0..10 {
            assert_ne!(b.pick(|_| true), Some(2));
            assert_eq!(b.pick(|i| i != 0), Some(1));
        }
        assert_eq!(b.pick(|i| i == 2), Some(2));
        assert_eq!(b.pick(|_| false), None);
    }

    #[test]
    fn zero_weight_is_a_last_resort() {
        let b = Balancer::new(slots(&[(0, false), (10, false)]));
        assert_eq!(b.pick(|_| true), Some(1));
        assert_eq!(b.pick(|i| i == 0), Some(0));
    }
}
