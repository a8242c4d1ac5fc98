//! The ranks of one run: a single process, or the MPI world when `tnml` is built with
//! `--features mpi` and started by an MPI launcher (`mpirun -np N tnml mps train ...`, or a batch
//! scheduler's `srun`). The trainers see only [`tnml_mps::Collective`]; this module owns MPI.
//!
//! Rules every command follows under several ranks: rank 0 alone writes the run directory and
//! prints progress; an error on any rank is printed by that rank with its number and ends the
//! whole job (`MPI_Abort`), so no rank waits forever in a collective for one that has failed.

use anyhow::{bail, Result};
use tnml_mps::{Collective, SingleProcess};

/// Environment variables by which launchers tell a process its world size (Open MPI, the PMI
/// of MPICH / Slurm, PMIx).
const WORLD_SIZE_VARS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"];
/// ... and how many ranks share this node (to split its cores among them).
const LOCAL_SIZE_VARS: [&str; 3] = [
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "SLURM_NTASKS_PER_NODE",
];

/// World size announced by a launcher, if any.
fn launcher_world_size() -> Option<usize> {
    WORLD_SIZE_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok().and_then(|s| s.trim().parse().ok()))
}

/// Writes `line` and a newline to stderr in one write, so that the lines of several ranks (which
/// the launcher merges) do not interleave mid-line (`eprintln!` writes its pieces one by one).
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// The ranks of this run.
pub struct Cluster {
    #[cfg(feature = "mpi")]
    world: Option<mpi_world::MpiWorld>,
}

impl Cluster {
    /// Joins the MPI world when a launcher started this process with more than one rank (and
    /// `tnml` has MPI); otherwise the run is one process.
    ///
    /// # Errors
    /// Started as one of several ranks by a `tnml` built without MPI: every rank would train on
    /// the whole set and write its own run directory.
    pub fn start() -> Result<Self> {
        let ranks = launcher_world_size().unwrap_or(1);
        #[cfg(feature = "mpi")]
        {
            let world = if ranks > 1 {
                Some(mpi_world::MpiWorld::initialize()?)
            } else {
                None
            };
            Ok(Self { world })
        }
        #[cfg(not(feature = "mpi"))]
        {
            if ranks > 1 {
                bail!(
                    "started as one of {ranks} MPI ranks, but this tnml was built without MPI: \
                     build it with `cargo build --release -p tnml-cli --features mpi` \
                     (needs libopenmpi-dev, openmpi-bin, libclang-dev), or run it without mpirun"
                );
            }
            Ok(Self {})
        }
    }

    /// The collective operations the trainers use.
    pub fn comm(&self) -> &dyn Collective {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w;
        }
        &SingleProcess
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.comm().size()
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.comm().rank()
    }

    /// Whether this rank writes the run directory and prints (rank 0).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// `"rank r of N: "` under several ranks, empty for one process.
    pub fn tag(&self) -> String {
        if self.size() > 1 {
            format!("rank {} of {}: ", self.rank(), self.size())
        } else {
            String::new()
        }
    }

    /// Refuses a command that does not run on several ranks.
    ///
    /// # Errors
    /// More than one rank.
    pub fn require_single(&self, command: &str) -> Result<()> {
        if self.size() > 1 {
            bail!(
                "`tnml {command}` runs in one process; under MPI ({} ranks) only `tnml mps train` is \
                 distributed: run it without mpirun",
                self.size()
            );
        }
        Ok(())
    }

    /// Threads per rank when `--threads` is not given: this node's cores shared by the ranks on
    /// it (`None` for one process: all cores).
    pub fn default_threads(&self) -> Option<usize> {
        if self.size() == 1 {
            return None;
        }
        let local = LOCAL_SIZE_VARS
            .iter()
            .find_map(|v| std::env::var(v).ok().and_then(|s| s.trim().parse::<usize>().ok()))
            .filter(|&n| n > 0)
            .unwrap_or(self.size());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Some((cores / local).max(1))
    }

    /// Waits until every rank has come here (one process: returns at once).
    pub fn barrier(&self) {
        tnml_mps::collective::sum_scalar(self.comm(), 0.0);
    }

    /// A rank other than 0 after an error that every rank met at the same point: rank 0
    /// prints it and ends the job ([`Cluster::fail`]); this rank waits in a collective that
    /// rank 0 never enters, so the job ends with one message, rank 0's.
    pub fn wait_for_root_to_end_the_job(&self) -> ! {
        self.barrier();
        // reached only if rank 0 did not abort (it always does): end this rank all the same
        std::process::exit(1)
    }

    /// Ends the job after `err` on this rank: one process exits with the error; under several
    /// ranks the error is printed with this rank's number and the whole job is aborted (the
    /// other ranks may be waiting in a collective).
    pub fn fail(&self, err: &anyhow::Error) -> std::process::ExitCode {
        say(&format!("error: {}{}", self.tag(), crate::flags::describe(err)));
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            w.abort(1);
        }
        std::process::ExitCode::FAILURE
    }
}

#[cfg(feature = "mpi")]
mod mpi_world {
    //! [`Collective`] over `MPI_COMM_WORLD` (rsmpi): allreduce with `MPI_SUM`, broadcast from
    //! rank 0.

    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator, CommunicatorCollectives, Root};
    use tnml_mps::Collective;

    /// The MPI world of this process (MPI is finalized when it is dropped).
    pub struct MpiWorld {
        world: SimpleCommunicator,
        _universe: Universe,
    }

    impl MpiWorld {
        pub fn initialize() -> anyhow::Result<Self> {
            let universe = mpi::initialize()
                .ok_or_else(|| anyhow::anyhow!("MPI was already initialized in this process"))?;
            Ok(Self {
                world: universe.world(),
                _universe: universe,
            })
        }

        pub fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }

    impl Collective for MpiWorld {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn sum_f64(&self, values: &mut [f64]) {
            let send = values.to_vec();
            self.world
                .all_reduce_into(&send[..], values, SystemOperation::sum());
        }
        fn broadcast_f64(&self, values: &mut [f64]) {
            self.world.process_at_rank(0).broadcast_into(values);
        }
    }
}
