//! natter-bench: a load generator that runs the same chat workloads against natter,
//! Redis pub/sub and an IRC server (ngircd), verifies every delivery and reports
//! throughput, latency percentiles and memory per connection.

pub mod client;
pub mod cpu;
pub mod join;
pub mod payload;
pub mod pin;
pub mod report;
pub mod workload;
