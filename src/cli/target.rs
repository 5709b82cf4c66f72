//! Where a command's Graph is: the real one (sign-in and cloud from [`AuthArgs`]) or, with
//! `--emulate TENANT_FILE`, an emulator started in-process for a rehearsal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::emulator::{self, Config};
use crate::graph::read::ReadStrategy;
use crate::graph::{AuthArgs, GraphClient, TokenSource};
use crate::run::connection::{Connect, Connection};
use crate::tenant::Tenant;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TargetArgs {
    #[command(flatten)]
    pub(crate) auth: AuthArgs,

    /// Rehearse against a Graph emulator started in-process, seeded from this tenant file.
    #[arg(long, value_name = "TENANT_FILE", conflicts_with = "graph_url")]
    pub(crate) emulate: Option<PathBuf>,

    /// With --emulate: keep the rehearsal tenant in FILE across commands. Read from FILE when
    /// it exists (else from the tenant file), written back when the command ends, so that
    /// plan, apply, rollback and snapshot act on one tenant. Delete FILE to start again.
    #[arg(long, value_name = "FILE", requires = "emulate")]
    pub(crate) state: Option<PathBuf>,
}

/// How a command that plans reads the tenant.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReadArgs {
    /// How to read the tenant: `auto` counts its users and takes whichever of a bulk
    /// snapshot and batched per-row lookups needs fewer Graph requests.
    #[arg(long = "read", value_enum, default_value = "auto", value_name = "HOW")]
    pub(crate) strategy: ReadStrategy,
}

impl Connect for TargetArgs {
    fn files(&self) -> Vec<&Path> {
        self.emulate
            .iter()
            .chain(&self.state)
            .map(PathBuf::as_path)
            .collect()
    }

    /// Connects (or starts the emulator). Must run inside a tokio runtime.
    async fn connect(&self) -> crate::Result<Connection> {
        let Some(tenant_file) = &self.emulate else {
            let client = GraphClient::from_args(&self.auth)?;
            tracing::info!("Graph at {}", self.auth.graph_root()?);
            return Ok(Connection::direct(client));
        };
        let tenant = match &self.state {
            Some(state) if state.exists() => {
                eprintln!(
                    "rehearsal: the tenant as {} left it (delete it to start again from {})",
                    state.display(),
                    tenant_file.display()
                );
                Tenant::load(state)?
            }
            _ => Tenant::load(tenant_file)?,
        };
        // A throwaway token: the emulator lives as long as this command.
        let token = format!("rehearsal-{}", uuid::Uuid::new_v4().simple());
        let config = Config {
            access_token: Some(token.clone()),
            ..Config::default()
        };
        let running = emulator::spawn(tenant, config)
            .await
            .map_err(|e| crate::Error::Other(format!("cannot start the emulator: {e}")))?;
        tracing::info!(
            "rehearsal: an emulator of {} at {}",
            tenant_file.display(),
            running.url
        );
        let http = AuthArgs {
            graph_url: Some(running.url.clone()),
            ..self.auth.clone()
        }
        .http_client()?;
        let client = GraphClient::new(
            http,
            &running.url,
            TokenSource::Fixed(azure_core::credentials::Secret::new(token)),
        )?;
        let state = self
            .state
            .clone()
            .map(|path| emulator::StateFile::new(path, Arc::clone(&running.emulator)));
        // The `--state` file is saved as it drops: after the emulator stops, or however the
        // command ends.
        Ok(Connection::served(client, move || {
            Box::pin(async move {
                running.stop().await;
                drop(state);
            })
        }))
    }
}
