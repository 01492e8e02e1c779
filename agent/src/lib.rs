//! The alustan agent as a library: the pieces the `alustan-agent` binary is built from, each
//! usable and testable on its own.
//!
//! - [`registry`]: registry scanning and version selection — list every tag of an image,
//!   choose the newest one satisfying a semver constraint (and explain why), and pin it to a
//!   digest; one scan per repository and credentials per interval, shared by every resource.
//! - [`decide`]: what to run next (pure); [`jobs`]: the Job of a run; [`outputs`]: results
//!   from logs; [`status`]: conditions and status writes; [`reconcile`]: the loop.

pub mod config;
pub mod decide;
pub mod error;
pub mod jobs;
pub mod outputs;
pub mod registry;
