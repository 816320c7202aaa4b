//! svirt's MCS allocator against a libvirt-style random-retry allocator, side by side in one run.
//!
//! `cargo bench -p svirt-core --bench allocator` prints, for occupancies of 0 %, 50 %, 99 % and
//! 99.99 % of the 523,776-pair space, the mean time of one allocation (draw, then release to keep
//! the occupancy) for both, their ratio, and the time svirt takes to hand out every pair.
//! These machines are noisy: read the ratios, not the absolute times.

#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use svirt_core::context::MlsRange;
use svirt_core::mcs::{McsRange, McsState};

/// libvirt's virSecuritySELinuxMCSFind: draw two categories, retry on equal or taken, keyed by
/// the formatted label string in a hash.
struct RandomRetry {
    taken: HashSet<String>,
    n: u32,
}

impl RandomRetry {
    fn allocate(&mut self, rng: &mut StdRng) -> (String, u64) {
        let mut draws = 0;
        loop {
            draws += 1;
            let a = rng.random_range(0..self.n);
            let b = rng.random_range(0..self.n);
            if a == b {
                continue;
            }
            let (a, b) = (a.min(b), a.max(b));
            let label = format!("s0:c{a},c{b}");
            if !self.taken.contains(&label) {
                self.taken.insert(label.clone());
                return (label, draws);
            }
        }
    }
}

fn fill(total: u32, used: u32, rng: &mut StdRng) -> (McsState, RandomRetry) {
    let r = McsRange::DEFAULT;
    // Choose which pairs are taken by shuffling indexes, then give both allocators the same set.
    let mut idx: Vec<u32> = (0..total).collect();
    for i in 0..used as usize {
        let j = rng.random_range(i..idx.len());
        idx.swap(i, j);
    }
    let mut s = McsState::new(r);
    let mut taken = HashSet::with_capacity(used as usize);
    for &i in &idx[..used as usize] {
        let level = r.level(r.pair_at(i));
        s.reserve_dynamic(&level).expect("free pair");
        taken.insert(level.to_string());
    }
    (
        s,
        RandomRetry {
            taken,
            n: r.count(),
        },
    )
}

fn per_op(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1e9 / f64::from(n)
}

fn main() {
    let r = McsRange::DEFAULT;
    let total = r.total_pairs();
    let mut rng = StdRng::seed_from_u64(42);
    println!(
        "MCS allocation, {total} pairs (s0:c0.c1023); mean of N allocations, each released again"
    );
    println!(
        "{:>10} {:>7} {:>14} {:>16} {:>14} {:>10}",
        "occupancy", "N", "svirt ns/op", "random ns/op", "random draws", "ratio"
    );
    for (name, used) in [
        ("0%", 0u32),
        ("50%", total / 2),
        ("99%", total / 100 * 99),
        ("99.99%", total - total / 10_000),
    ] {
        let (mut s, mut lv) = fill(total, used, &mut rng);
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            let l = s.allocate(&mut rng).expect("free pair");
            s.release(&MlsRange::single(l), "bench");
        }
        let ours = per_op(t.elapsed(), n);
        let mut draws = 0;
        let t = Instant::now();
        for _ in 0..n {
            let (l, d) = lv.allocate(&mut rng);
            draws += d;
            lv.taken.remove(&l);
        }
        let theirs = per_op(t.elapsed(), n);
        println!(
            "{name:>10} {n:>7} {ours:>14.0} {theirs:>16.0} {:>14.1} {:>9.2}x",
            draws as f64 / f64::from(n),
            theirs / ours
        );
    }
    let mut s = McsState::new(r);
    let t = Instant::now();
    let mut handed = 0u32;
    while s.allocate(&mut rng).is_ok() {
        handed += 1;
    }
    let exhaust = t.elapsed();
    let t = Instant::now();
    let refused = s.allocate(&mut rng).is_err();
    let refusal = t.elapsed();
    println!(
        "svirt: handed out all {handed} pairs in {:.3} s; the next allocation was {} in {} ns",
        exhaust.as_secs_f64(),
        if refused {
            "refused (LabelsExhausted)"
        } else {
            "NOT refused"
        },
        refusal.as_nanos()
    );
    println!("random-retry: with every pair taken, the next allocation never returns (not run)");
}
