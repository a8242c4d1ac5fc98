//! Mode factorizations chosen for a layer when the user gives none (whole-model entanglement
//! of a foreign state_dict, the Python package's `tnml.entangle`).
//!
//! A `rows x cols` weight becomes an MPO with `sites = clamp(max(Omega(rows), Omega(cols)), 2, 4)`
//! sites, `Omega(n)` the number of prime factors of `n` with multiplicity: each dimension's
//! prime factors, largest first, go to the part with the smallest product so far (the greedy
//! balanced split), parts in nonincreasing order, padded with 1 where a dimension has fewer
//! prime factors than sites. So 784 -> (7,7,4,4), 256 -> (4,4,4,4), 10 -> (5,2,1,1), 4096 ->
//! (8,8,8,8). A convolution weight `(out, in, kh, kw)` is read as `out x (in kh kw)`.

/// The prime factors of `n`, largest first (`n = 0` or 1: none).
pub fn prime_factors(mut n: usize) -> Vec<usize> {
    let mut f = Vec::new();
    let mut p = 2;
    while n > 1 && p * p <= n {
        while n.is_multiple_of(p) {
            f.push(p);
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        f.push(n);
    }
    f.reverse();
    f
}

/// `n` as `parts` factors, as equal as the prime factors allow (largest prime to the smallest
/// part), nonincreasing; their product is `n`. `parts = 0` gives nothing.
pub fn balanced_factors(n: usize, parts: usize) -> Vec<usize> {
    if parts == 0 {
        return Vec::new();
    }
    let mut out = vec![1usize; parts];
    for p in prime_factors(n) {
        let smallest = (0..parts).min_by_key(|&i| (out[i], i)).unwrap_or(0);
        out[smallest] *= p;
    }
    if n == 0 {
        out[0] = 0;
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

/// `(in_modes, out_modes)` for a `rows x cols` matrix (`y = W x`: `cols` inputs, `rows`
/// outputs), by the rule in the module docs.
pub fn default_layer_modes(rows: usize, cols: usize) -> (Vec<usize>, Vec<usize>) {
    let sites = prime_factors(rows)
        .len()
        .max(prime_factors(cols).len())
        .clamp(2, 4);
    (balanced_factors(cols, sites), balanced_factors(rows, sites))
}

/// Rows and columns of a weight of `shape` read as a matrix: `shape[0] x prod(rest)` (a dense
/// layer's `(out, in)`, a convolution's `(out, in kh kw)`); `None` below two dimensions.
pub fn matrix_shape(shape: &[usize]) -> Option<(usize, usize)> {
    match shape {
        [rows, rest @ ..] if !rest.is_empty() => Some((*rows, rest.iter().product())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_are_balanced_and_multiply_back() {
        assert_eq!(prime_factors(784), vec![7, 7, 2, 2, 2, 2]);
        assert_eq!(prime_factors(1), Vec::<usize>::new());
        assert_eq!(balanced_factors(784, 4), vec![7, 7, 4, 4]);
        assert_eq!(balanced_factors(4096, 4), vec![8, 8, 8, 8]);
        assert_eq!(balanced_factors(10, 4), vec![5, 2, 1, 1]);
        assert_eq!(balanced_factors(13, 2), vec![13, 1]);
        for n in 1..2000 {
            for parts in 1..5 {
                let f = balanced_factors(n, parts);
                assert_eq!((f.len(), f.iter().product::<usize>()), (parts, n));
                assert!(f.windows(2).all(|w| w[0] >= w[1]));
            }
        }
    }

    #[test]
    fn layer_modes_and_matrix_shapes() {
        assert_eq!(
            default_layer_modes(256, 784),
            (vec![7, 7, 4, 4], vec![4, 4, 4, 4])
        );
        assert_eq!(default_layer_modes(10, 256), (vec![4, 4, 4, 4], vec![5, 2, 1, 1]));
        assert_eq!(default_layer_modes(7, 13), (vec![13, 1], vec![7, 1]));
        assert_eq!(matrix_shape(&[6, 1, 5, 5]), Some((6, 25)));
        assert_eq!(matrix_shape(&[10, 84]), Some((10, 84)));
        assert_eq!(matrix_shape(&[10]), None);
        assert_eq!(matrix_shape(&[]), None);
    }
}
