//! A run is one Job of one resource: plan, deploy, post-deploy or destroy. These modules build its
//! Job ([`jobs`]), start it with its seal ([`start`], [`seal`]), read how it ended and what it
//! printed ([`observe`], [`outputs`], [`log_lines`], [`plan`]) and gather cluster facts a deploy reports
//! ([`gather`], from the watches of [`credential_watch`]).

pub mod credential_watch;
pub mod gather;
pub mod job_outcomes;
pub mod jobs;
pub mod log_lines;
pub mod observe;
pub mod outputs;
pub mod plan;
pub mod seal;
pub mod start;
