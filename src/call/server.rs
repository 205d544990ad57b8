//! Daemon wiring.
/// Runs the daemon until it is stopped.
pub async fn run(_config: crate::config::Config) -> anyhow::Result<()> {
    anyhow::bail!("not wired yet")
}
