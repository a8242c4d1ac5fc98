//! An in-process group of threads, one per rank: the sharded trainers run, and are tested,
//! without MPI. Sums add every rank's buffer in rank order (deterministic), broadcasts copy
//! rank 0's. Every collective call is two barriers, so it is for tests and checks, not speed.

use std::sync::{Arc, Barrier, Mutex};

use super::Collective;

struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
}

/// One rank of a thread group.
pub struct ThreadRank {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

/// A group of `size` ranks, to be moved into one thread each.
pub fn group(size: usize) -> Vec<ThreadRank> {
    let shared = Arc::new(Shared {
        barrier: Barrier::new(size),
        slots: Mutex::new(vec![Vec::new(); size]),
    });
    (0..size)
        .map(|rank| ThreadRank {
            rank,
            size,
            shared: Arc::clone(&shared),
        })
        .collect()
}

impl ThreadRank {
    /// Every rank's buffer (after all have posted theirs).
    fn exchange(&self, mine: Vec<f64>) -> Vec<Vec<f64>> {
        self.shared.slots.lock().expect("no rank panicked")[self.rank] = mine;
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().expect("no rank panicked").clone();
        self.shared.barrier.wait();
        all
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f64(&self, values: &mut [f64]) {
        let all = self.exchange(values.to_vec());
        for (i, v) in values.iter_mut().enumerate() {
            *v = all.iter().map(|b| b[i]).sum();
        }
    }
    fn broadcast_f64(&self, values: &mut [f64]) {
        let all = self.exchange(values.to_vec());
        values.copy_from_slice(&all[0]);
    }
}
