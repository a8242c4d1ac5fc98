//! This thread's pool of kernel temporaries, and the test inputs the kernels' tests share.

thread_local! {
    /// Buffers the kernels reuse between calls on the same thread (see [`with_scratch`]).
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` values (contents unspecified) taken from this thread's pool and
/// returned to it afterwards. Temporaries of the kernels live here: fresh multi-megabyte vectors
/// every step would each be new pages from the kernel, and the page faults cost as much as the
/// arithmetic.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let out = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    out
}

/// Deterministic test values in `[-0.5, 0.5)`, different for each `seed` (a multiplicative hash).
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503));
            (h >> 8) as f32 / 16_777_216.0 - 0.5
        })
        .collect()
}
