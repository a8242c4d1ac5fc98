//! Mode factorizations chosen for a layer when the user gives none (whole-model entanglement
//! of a foreign state_dict, `mpo compress --auto`, the Python package's `tnml.entangle`).
//!
//! A `rows x cols` weight becomes an MPO with `sites = clamp(max(Omega(rows), Omega(cols)), 2, S)`
//! sites, `Omega(n)` the number of prime factors of `n` with multiplicity and `S` the most sites
//! asked for ([`DEFAULT_SITES`] = 4, at most [`MAX_SITES`]): each dimension's prime factors,
//! largest first, go to the part with the smallest product so far (the greedy balanced split),
//! parts in nonincreasing order, padded with 1 where a dimension has fewer prime factors than
//! sites. So 784 -> (7,7,4,4), 256 -> (4,4,4,4), 10 -> (5,2,1,1), 4096 -> (8,8,8,8). A
//! convolution weight `(out, in, kh, kw)` is read as `out x (in kh kw)`.
//!
//! **Lopsided modes are refused** ([`layer_modes`]): when a site's pair `in_k out_k` exceeds
//! 16 times its equal share `(rows cols)^(1/sites)`, a large prime factor has swallowed the
//! dimension (a 30522-word embedding, `2 x 3 x 5087`, gives out-modes `(5087,3,2,1)`) and the
//! bonds beside it sit at their bound, saying nothing about the weight. The error names the
//! factors and the nearest padded size with a balanced split (30720 = (16,16,12,10)), to pad the
//! weight with zeros to or to give modes by hand.

/// The most sites chosen when none are asked for.
pub const DEFAULT_SITES: usize = 4;
/// The most sites [`layer_modes`] accepts.
pub const MAX_SITES: usize = 8;
/// A site whose pair `in_k out_k` exceeds this many times its equal share is lopsided.
pub const LOPSIDED_FACTOR: f64 = 16.0;

/// Why [`layer_modes`] found no balanced modes for a weight.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{dim} {axis} = {} split into {sites} modes gives {factors:?}: the factor {} leaves no balanced split (equal modes would be about {:.0}), so the bonds beside it would sit at their bound; pad the weight with zeros to {padded} {axis} ({padded_factors:?}) or give its modes", join(prime_factors(*dim)), factors[0], (*dim as f64).powf(1.0 / *sites as f64))]
pub struct LopsidedModes {
    /// The dimension with the large factor.
    pub dim: usize,
    /// "rows" or "columns".
    pub axis: &'static str,
    /// Number of sites.
    pub sites: usize,
    /// Its balanced split.
    pub factors: Vec<usize>,
    /// The nearest larger size whose split is balanced.
    pub padded: usize,
    /// That size's split.
    pub padded_factors: Vec<usize>,
}

fn join(f: Vec<usize>) -> String {
    f.iter().map(ToString::to_string).collect::<Vec<_>>().join(" x ")
}

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
/// outputs) with at most [`DEFAULT_SITES`] sites, by the rule in the module docs, lopsided or
/// not (see [`layer_modes`] for the checked choice).
pub fn default_layer_modes(rows: usize, cols: usize) -> (Vec<usize>, Vec<usize>) {
    split_layer(rows, cols, DEFAULT_SITES)
}

fn split_layer(rows: usize, cols: usize, max_sites: usize) -> (Vec<usize>, Vec<usize>) {
    let sites = prime_factors(rows)
        .len()
        .max(prime_factors(cols).len())
        .clamp(2, max_sites.max(2));
    (balanced_factors(cols, sites), balanced_factors(rows, sites))
}

/// The largest site pair `in_k out_k` over its equal share `(rows cols)^(1/sites)`.
fn lopsidedness(in_modes: &[usize], out_modes: &[usize]) -> f64 {
    let total: f64 = in_modes.iter().chain(out_modes).map(|&m| (m as f64).ln()).sum();
    let share = (total / in_modes.len() as f64).exp();
    let largest = in_modes
        .iter()
        .zip(out_modes)
        .map(|(i, o)| (i * o) as f64)
        .fold(0.0, f64::max);
    largest / share
}

/// `(in_modes, out_modes)` for a `rows x cols` matrix with at most `max_sites` sites (clamped
/// to `2..=MAX_SITES`), refused when lopsided (module docs).
///
/// # Errors
/// [`LopsidedModes`], with the padded size that would split evenly.
///
/// # Complexity
/// Trial division: O(sqrt(n)) per dimension; a refusal tries at most 100,000 sizes above it
/// (then the next power of two).
pub fn layer_modes(
    rows: usize,
    cols: usize,
    max_sites: usize,
) -> Result<(Vec<usize>, Vec<usize>), LopsidedModes> {
    let max_sites = max_sites.clamp(2, MAX_SITES);
    let (in_modes, out_modes) = split_layer(rows, cols, max_sites);
    if lopsidedness(&in_modes, &out_modes) <= LOPSIDED_FACTOR {
        return Ok((in_modes, out_modes));
    }
    // the dimension holding the largest factor is the one to pad
    let (dim, axis, factors) = if out_modes[0] >= in_modes[0] {
        (rows, "rows", out_modes)
    } else {
        (cols, "columns", in_modes)
    };
    let balanced =
        |m: usize| {
            let (i, o) = if axis == "rows" {
                split_layer(m, cols, max_sites)
            } else {
                split_layer(rows, m, max_sites)
            };
            (i.len() == factors.len() && lopsidedness(&i, &o) <= LOPSIDED_FACTOR)
                .then_some(if axis == "rows" { o } else { i })
        };
    // smooth numbers are dense: the first balanced size lies close above (bounded search)
    let (padded, padded_factors) = (dim + 1..=dim.saturating_mul(3) / 2)
        .take(100_000)
        .find_map(|m| balanced(m).map(|f| (m, f)))
        .unwrap_or_else(|| {
            let m = dim.next_power_of_two();
            (m, balanced_factors(m, factors.len()))
        });
    Err(LopsidedModes {
        dim,
        axis,
        sites: factors.len(),
        factors,
        padded,
        padded_factors,
    })
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

    #[test]
    fn lopsided_modes_are_refused_with_a_padded_size() {
        // ordinary layers pass unchanged
        assert_eq!(layer_modes(256, 784, 4).unwrap(), default_layer_modes(256, 784));
        assert_eq!(
            layer_modes(10, 256, 4).unwrap(),
            (vec![4, 4, 4, 4], vec![5, 2, 1, 1])
        );
        assert_eq!(layer_modes(384, 384, 4).unwrap().0, vec![6, 4, 4, 4]);
        // a word embedding (30522 = 2 x 3 x 5087) is refused, naming the padded size
        let e = layer_modes(30522, 384, 4).unwrap_err();
        assert_eq!(
            (e.dim, e.axis, e.factors.clone()),
            (30522, "rows", vec![5087, 3, 2, 1])
        );
        assert!(e.padded > 30522 && e.padded <= 30522 * 3 / 2, "{e}");
        assert_eq!(e.padded_factors.iter().product::<usize>(), e.padded);
        let (i, o) = layer_modes(e.padded, 384, 4).unwrap();
        assert_eq!((i.len(), o), (4, e.padded_factors.clone()));
        let text = e.to_string();
        assert!(
            text.starts_with("30522 rows = 5087 x 3 x 2 split into 4 modes gives [5087, 3, 2, 1]"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pad the weight with zeros to {} rows", e.padded)),
            "{text}"
        );
        // the same on the input side
        let e = layer_modes(512, 1009, 4).unwrap_err();
        assert_eq!((e.dim, e.axis), (1009, "columns"));
    }

    #[test]
    fn more_sites_when_asked() {
        assert_eq!(
            layer_modes(4096, 4096, 8).unwrap().0,
            vec![4, 4, 4, 4, 2, 2, 2, 2]
        );
        assert_eq!(layer_modes(768, 768, 6).unwrap().0.len(), 6);
        // never fewer than 2, never more than MAX_SITES or the prime factors allow
        assert_eq!(layer_modes(6, 6, 1).unwrap().0.len(), 2);
        assert_eq!(layer_modes(1 << 20, 1 << 20, 100).unwrap().0.len(), MAX_SITES);
        assert_eq!(layer_modes(8, 8, 8).unwrap().0, vec![2, 2, 2]);
    }
}
