//! What the benchmarks share.

use anyhow::Context;
use burner::local::{ExtraArg, LocalCluster, LocalOptions};

/// Starts a local cluster for a benchmark, in-flight limits off unless `keep_limits`, and
/// returns it with the apiserver's pid (for its CPU figures). `extra_args` pass flags
/// through to the cluster's programs.
pub async fn start_cluster(
    name: &str,
    keep_limits: bool,
    extra_args: Vec<ExtraArg>,
) -> anyhow::Result<(LocalCluster, u32)> {
    let mut options = LocalOptions::new(name);
    options.tuning.extra_args = extra_args;
    options.state_dir =
        Some(std::env::temp_dir().join(format!("burner-{name}-{}", std::process::id())));
    options.tuning.disable_qps_limits = !keep_limits;
    let cluster = LocalCluster::start(&options)
        .await
        .context("cannot start the local cluster")?;
    let apiserver = cluster
        .record()
        .components
        .iter()
        .find(|c| c.name == "kube-apiserver")
        .map(|c| c.pid)
        .context("no apiserver in the record")?;
    Ok((cluster, apiserver))
}

/// User plus system CPU seconds of a process, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14) + ticks(15)) / hz
}
