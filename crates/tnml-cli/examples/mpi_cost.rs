//! Measures the constants of the data-parallel sweep's cost model on this machine and prints
//! the predicted sweep times (`tnml_mps::collective::cost`):
//!
//! ```text
//! cargo build --release -p tnml-cli --features mpi --example mpi_cost
//! mpirun --allow-run-as-root -np 2 target/release/examples/mpi_cost [--rate GFLOPS] [--alpha S --beta S/B]
//! ```
//!
//! - `alpha`: mean seconds of an allreduce of one f64 between the ranks (5,000 calls);
//! - `beta`: seconds per byte of an allreduce of 16 MB of f32 (20 calls);
//! - `rate`: f32 GFLOP/s of one rank (one thread) in the bond's two GEMMs (apply and adjoint),
//!   all ranks computing at once, at bonds 20 and 120; `--rate` replaces it (e.g. by the GFLOP/s
//!   a real sweep printed, which includes everything else a bond update does);
//! - `svd_rate`: flops per second of the truncated SVD of the bond matrix (f64, one thread).
//!
//! `--alpha` / `--beta` replace the measured exchange constants (e.g. a cluster network's) to
//! print the table for another machine. Rank 0 prints.

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::{Communicator, CommunicatorCollectives};
use tnml_core::{faer::Mat, truncated_svd, TruncParams};
use tnml_mps::collective::cost::{bond_time, ranks_where_comm_reaches, BondShape, Machine};
use tnml_mps::gemm::{gemm_at_outer, gemm_contract_rows};
use tnml_mps::Loss;

fn arg(name: &str) -> Option<f64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} {v}: not a number")))
}

fn shape(bond: usize) -> BondShape {
    BondShape {
        bond,
        dim: 2,
        labels: 10,
        cg_passes: 3,
        refit_passes: 1,
        loss: Loss::CrossEntropy,
    }
}

/// GFLOP/s of one apply and one adjoint of the two-site problem at `bond` on `n` samples.
fn gemm_rate(bond: usize, n: usize) -> f64 {
    let (k, labels) = (bond * 4, 10);
    let x: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 997) as f32) / 997.0).collect();
    let r: Vec<f32> = (0..n * bond)
        .map(|i| ((i * 104_729 % 991) as f32) / 991.0)
        .collect();
    let b: Vec<f32> = (0..k * labels * bond)
        .map(|i| ((i * 31 % 17) as f32) / 17.0)
        .collect();
    let e: Vec<f32> = (0..n * labels).map(|i| ((i * 13 % 11) as f32) / 11.0).collect();
    let flops = 2.0 * 2.0 * n as f64 * k as f64 * (labels * bond) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        let f = gemm_contract_rows(&x, n, k, &b, labels, &r, bond);
        let g = gemm_at_outer(&x, n, k, &e, labels, &r, bond);
        std::hint::black_box((f, g));
        best = best.min(t0.elapsed().as_secs_f64());
    }
    flops / best / 1e9
}

/// Flops per second of the truncated SVD of the `(D d) x (d L D)` bond matrix.
fn svd_rate(bond: usize) -> f64 {
    let (rows, cols) = (bond * 2, 2 * 10 * bond);
    let a = Mat::from_fn(rows, cols, |i, j| {
        (((i * 31 + j * 17) % 23) as f64 - 11.0) / 7.0 + 1e-3 * (i * j) as f64
    });
    let svd_flops = shape(bond).cost(1).svd_flops;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        std::hint::black_box(truncated_svd(a.as_ref(), &TruncParams::max_bond(bond)).expect("an SVD"));
        best = best.min(t0.elapsed().as_secs_f64());
    }
    svd_flops / best
}

fn main() {
    let universe = mpi::initialize().expect("MPI initializes once");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("one thread per rank");
    // latency: allreduce of one f64
    let mut one = [0f64];
    for _ in 0..200 {
        world.all_reduce_into(&[1.0f64][..], &mut one[..], SystemOperation::sum());
    }
    world.barrier();
    let calls = 5000;
    let t0 = Instant::now();
    for _ in 0..calls {
        world.all_reduce_into(&[1.0f64][..], &mut one[..], SystemOperation::sum());
    }
    let alpha_measured = t0.elapsed().as_secs_f64() / calls as f64;
    // volume: allreduce of 16 MB of f32
    let big = vec![1f32; 4 << 20];
    let mut out = vec![0f32; big.len()];
    world.all_reduce_into(&big[..], &mut out[..], SystemOperation::sum());
    world.barrier();
    let reps = 20;
    let t0 = Instant::now();
    for _ in 0..reps {
        world.all_reduce_into(&big[..], &mut out[..], SystemOperation::sum());
    }
    let beta_measured = t0.elapsed().as_secs_f64() / reps as f64 / (big.len() * 4) as f64;
    // compute, every rank at once
    world.barrier();
    let rate20 = gemm_rate(20, 10_000);
    let rate120 = gemm_rate(120, 2_000);
    let svd20 = svd_rate(20);
    let svd120 = svd_rate(120);
    if rank != 0 {
        return;
    }
    let alpha = arg("--alpha").unwrap_or(alpha_measured);
    let beta = arg("--beta").unwrap_or(beta_measured);
    println!("# cost model constants ({size} ranks on this machine)\n");
    println!(
        "alpha (allreduce of 8 B)        {:.2} us{}",
        alpha_measured * 1e6,
        if alpha != alpha_measured {
            format!(" (table uses {:.2} us)", alpha * 1e6)
        } else {
            String::new()
        }
    );
    println!(
        "beta  (allreduce of 16 MB)      {:.3} ns/B = {:.2} GB/s{}",
        beta_measured * 1e9,
        1e-9 / beta_measured,
        if beta != beta_measured {
            format!(" (table uses {:.2} GB/s)", 1e-9 / beta)
        } else {
            String::new()
        }
    );
    println!("rate  (bond GEMMs, 1 thread)    {rate20:.1} GFLOP/s at bond 20, {rate120:.1} at bond 120");
    println!(
        "svd   (bond matrix, f64)        {:.2} GFLOP/s at bond 20, {:.2} at bond 120",
        svd20 / 1e9,
        svd120 / 1e9
    );
    let rate_override = arg("--rate");
    if let Some(r) = rate_override {
        println!("the table uses --rate {r} GFLOP/s per rank instead of the GEMM rate");
    }
    println!(
        "\n# predicted seconds per sweep (cross-entropy, 3 CG passes, 1 refit pass; one core per rank)\n"
    );
    println!("| case | bond updates | ranks | compute | serial SVD | exchange | sweep | exchange share |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let cases = [
        ("MNIST 14x14, bond 20", 196usize, 20usize, rate20, svd20),
        ("MNIST 14x14, bond 120", 196, 120, rate120, svd120),
        ("MNIST 28x28, bond 120", 784, 120, rate120, svd120),
    ];
    let mut tens = Vec::new();
    for (name, sites, bond, rate, svd) in cases {
        let machine = Machine {
            alpha,
            beta,
            rate: rate_override.unwrap_or(rate) * 1e9,
            svd_rate: svd,
        };
        let updates = 2.0 * (sites - 1) as f64;
        for ranks in [1usize, 2, 8, 64] {
            let t = bond_time(&shape(bond), 60_000, ranks, &machine);
            println!(
                "| {name} | {updates} | {ranks} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1}% |",
                updates * t.compute,
                updates * t.serial,
                updates * t.comm,
                updates * t.total(),
                100.0 * t.comm / t.total()
            );
        }
        tens.push((
            name,
            ranks_where_comm_reaches(&shape(bond), 60_000, &machine, 0.1),
        ));
    }
    println!();
    for (name, n) in tens {
        match n {
            Some(n) => println!("{name}: the exchange reaches 10% of a sweep at {n} ranks"),
            None => println!("{name}: the exchange stays under 10% up to 2^20 ranks"),
        }
    }
    let mem = |sites: f64, bond: f64| (sites + 1.0) * 60_000.0 * bond * 4.0 / 1e9;
    println!(
        "\nenvironments: {:.2} GB at 14x14 bond 20, {:.1} GB at 14x14 bond 120, {:.1} GB at 28x28 bond 120, divided by the ranks",
        mem(196.0, 20.0),
        mem(196.0, 120.0),
        mem(784.0, 120.0)
    );
}
