//! `hardmatch emulator`: a local Microsoft Graph for rehearsals, seeded from a tenant file.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use crate::emulator::faults::Faults;
use crate::emulator::sync::Directory;
use crate::emulator::throttle::Quotas;
use crate::emulator::{self, Config};
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::tenant::Tenant;

const EXAMPLES: &str = "\
Examples:
  # Rehearse against a copy of your tenant (from `hardmatch snapshot -o tenant.json`):
  hardmatch emulator --tenant tenant.json --access-token rehearsal
  # then, in another terminal:
  HARDMATCH_ACCESS_TOKEN=rehearsal hardmatch plan users.csv --graph-url http://127.0.0.1:PORT -o plan.xlsx

  # A 10,000-user migration in seconds: the clock runs 60 times faster, with Graph's faults:
  hardmatch emulator --tenant tenant.json --time-scale 60 --faults 503=0.05,reset=0.01,seed=1 --access-token t

  # The AD side too: a sync cycle every 30 seconds (or POST /_emulator/sync), as after a cut-over:
  hardmatch emulator --tenant tenant.json --directory users.csv --sync-every 30s --access-token rehearsal

  # A rehearsal tenant that outlives the emulator (saved on Ctrl-C, picked up next time):
  hardmatch emulator --tenant tenant.json --state rehearsal.json --access-token rehearsal

  # HTTPS and client-credential sign-in, for clients that insist on both:
  hardmatch emulator --tenant samples/tenant.json --tls --cert-out emulator.pem --client-id app1 --client-secret '<a made-up secret>'

  # Certificate sign-in: the app's certificate (public part, PEM); clients sign with its key:
  hardmatch emulator --tenant samples/tenant.json --tls --client-id app1 --client-certificate app1.crt

The first line on stdout is `listening on <url>`. GET /_emulator/stats and /_emulator/state show
what clients did; POST /_emulator/storm?seconds=N answers every request 429 for N emulated
seconds, POST /_emulator/expire-tokens expires every issued token, POST /_emulator/sync runs a
sync cycle from --directory. Runs until Ctrl-C.";

/// Run a local Microsoft Graph emulator seeded from a tenant file.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The tenant file (the format `hardmatch snapshot` writes; see samples/tenant.json).
    #[arg(long, value_name = "FILE")]
    pub(crate) tenant: PathBuf,

    /// Keep the tenant in FILE across runs: read from it when it exists (else from --tenant),
    /// written back when the emulator stops (Ctrl-C), so a rehearsal can go on another day.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,

    /// The AD side (any export hardmatch reads): `POST /_emulator/sync` runs one Entra
    /// Connect / Cloud Sync cycle from it (hard match, the 2026 protections, soft match,
    /// new users).
    #[arg(long, value_name = "EXPORT")]
    pub(crate) directory: Option<PathBuf>,

    /// With --directory: also run a sync cycle this often (e.g. 30m, Entra's default; 10s).
    #[arg(long, value_name = "DURATION", requires = "directory", value_parser = humantime::parse_duration)]
    pub(crate) sync_every: Option<std::time::Duration>,

    /// Address to listen on. Keep it on loopback: the emulator has no real security.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub(crate) listen: SocketAddr,

    /// Run the clock this many times faster (quota windows, Retry-After and latency alike).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub(crate) time_scale: f64,

    /// Faults to inject, e.g. `503=0.05,504=0.01,reset=0.02,slow=0.01,429=0.01,expire=0.001,seed=7`.
    #[arg(long, value_name = "SPEC", value_parser = clap::value_parser!(Faults))]
    pub(crate) faults: Option<Faults>,

    /// Per-request latency range in emulated milliseconds.
    #[arg(long, default_value = "30..250", value_parser = parse_range, value_name = "MIN..MAX")]
    pub(crate) latency_ms: (u64, u64),

    /// Serve HTTPS with a self-signed certificate (written to --cert-out).
    #[arg(long)]
    pub(crate) tls: bool,

    /// Where --tls writes its certificate (PEM), for clients to trust.
    #[arg(long, default_value = "hardmatch-emulator.pem", value_name = "FILE")]
    pub(crate) cert_out: PathBuf,

    /// An app that may sign in with client credentials (with --client-secret and/or
    /// --client-certificate).
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,

    /// That app's certificate (PEM, the public part): it signs in with a client assertion
    /// signed by the certificate's key, as AZURE_CLIENT_CERTIFICATE_PATH does.
    #[arg(long, value_name = "FILE", requires = "client_id")]
    pub(crate) client_certificate: Option<PathBuf>,

    /// That app's secret (an emulator-only value; never a real one).
    #[arg(
        long,
        requires = "client_id",
        value_name = "SECRET",
        env = "HARDMATCH_EMULATOR_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub(crate) client_secret: Option<String>,

    /// A bearer token that is always accepted, to skip sign-in.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HARDMATCH_EMULATOR_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub(crate) access_token: Option<String>,

    /// Lifetime of issued tokens, in emulated seconds.
    #[arg(long, default_value_t = 3599.0, value_name = "SECS")]
    pub(crate) token_lifetime: f64,

    /// Resource units per 10 s per app (default: by tenant size, 3,500 / 5,000 / 8,000).
    #[arg(long, value_name = "N")]
    pub(crate) ru_per_10s: Option<f64>,

    /// Writes per 150 s per app and tenant.
    #[arg(long, default_value_t = 3000.0, value_name = "N")]
    pub(crate) writes_per_150s: f64,

    /// How many writes may come at once (the write bucket; default: all of --writes-per-150s).
    /// A small bucket enforces the write rate from the first second.
    #[arg(long, value_name = "N")]
    pub(crate) write_burst: Option<f64>,

    /// Writes per 5 min per tenant, all apps.
    #[arg(long, default_value_t = 18000.0, value_name = "N")]
    pub(crate) tenant_writes_per_5min: f64,

    /// Let deleted users' anchors be reused (INFERRED behaviour; default: they stay reserved).
    #[arg(long)]
    pub(crate) deleted_users_free_anchors: bool,

    /// Let the anchor of a user in a federated domain be changed in place (INFERRED; default: refused).
    #[arg(long)]
    pub(crate) allow_federated_change: bool,

    /// Answer every write with 403, as for an app that lacks User.ReadWrite.All.
    #[arg(long)]
    pub(crate) forbid_writes: bool,

    /// Answer role definitions, assignments and eligibilities with 403, as for an app that
    /// lacks RoleManagement.Read.Directory.
    #[arg(long)]
    pub(crate) forbid_role_reads: bool,

    /// Answer the group listing, group members and owners with 403, as for an app that lacks
    /// GroupMember.Read.All.
    #[arg(long)]
    pub(crate) forbid_group_reads: bool,

    /// Refuse role eligibility schedules, as a tenant without Entra ID P2 may.
    #[arg(long)]
    pub(crate) no_p2: bool,
    /// Answer writes to these users (ids or UPNs) with 403, as Graph does for a user whose
    /// sensitive attributes the app may not change (a privileged user).
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub(crate) forbid_writes_to: Vec<String>,

    /// The signed-in app holds a privileged role (Privileged Authentication Administrator or
    /// Global Administrator): it may change the anchor and UPN of privileged users. Without
    /// it, those writes are answered 403, as Graph does.
    #[arg(long)]
    pub(crate) app_privileged: bool,

    /// For N emulated milliseconds after a write or a purge, reads see the state before it
    /// and a purged holder still holds its anchor, as Graph may (no read-after-write
    /// guarantee).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) read_lag_ms: u64,
    /// Answer writes of onPremisesObjectIdentifier with 403, as for an app without
    /// User-OnPremisesSyncBehavior.ReadWrite.All or the Hybrid Identity Administrator role.
    #[arg(long)]
    pub(crate) forbid_object_identifier_writes: bool,
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (low, high) = s.split_once("..").unwrap_or((s, s));
    match (low.trim().parse(), high.trim().parse()) {
        (Ok(low), Ok(high)) if low <= high => Ok((low, high)),
        _ => Err(format!(
            "{s:?}: expected MIN..MAX in milliseconds, e.g. 30..250"
        )),
    }
}

impl Args {
    fn config(&self) -> crate::Result<Config> {
        let certificate = match &self.client_certificate {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                crate::Error::Usage(format!("--client-certificate {}: {e}", path.display()))
            })?),
            None => None,
        };
        if self.client_id.is_some() && self.client_secret.is_none() && certificate.is_none() {
            return Err(crate::Error::Usage(
                "--client-id needs --client-secret or --client-certificate".into(),
            ));
        }
        Ok(Config {
            quotas: Quotas {
                resource_units_per_10s: self.ru_per_10s,
                app_writes_per_150s: self.writes_per_150s,
                app_write_burst: self.write_burst,
                tenant_writes_per_5min: self.tenant_writes_per_5min,
            },
            time_scale: self.time_scale,
            latency_ms: self.latency_ms,
            faults: self.faults.clone().unwrap_or_default(),
            deleted_users_reserve_anchors: !self.deleted_users_free_anchors,
            refuse_federated_anchor_change: !self.allow_federated_change,
            forbid_writes: self.forbid_writes,
            forbid_role_reads: self.forbid_role_reads,
            forbid_group_reads: self.forbid_group_reads,
            refuse_role_eligibility: self.no_p2,
            forbid_writes_to: self.forbid_writes_to.clone(),
            app_privileged: self.app_privileged,
            read_lag_ms: self.read_lag_ms,
            forbid_object_identifier_writes: self.forbid_object_identifier_writes,
            clients: self
                .client_id
                .iter()
                .cloned()
                .zip(self.client_secret.iter().cloned())
                .collect(),
            client_certificates: self.client_id.iter().cloned().zip(certificate).collect(),
            access_token: self.access_token.clone(),
            token_lifetime_secs: self.token_lifetime,
            tls_cert_out: self.tls.then(|| self.cert_out.clone()),
            directory: match &self.directory {
                Some(path) => Some(Arc::new(Directory::from_export(path)?)),
                None => None,
            },
        })
    }
}

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    let tenant = match &args.state {
        Some(state) if state.exists() => Tenant::load(state)?,
        _ => Tenant::load(&args.tenant)?,
    };
    let config = args.config()?;
    crate::run::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Error::Other(format!("cannot listen on {}: {e}", args.listen)))?;
        let running = emulator::spawn_on(listener, tenant, config)
            .await
            .map_err(|e| Error::Other(format!("cannot start the emulator: {e}")))?;
        let _state = args
            .state
            .clone()
            .map(|path| emulator::StateFile::new(path, Arc::clone(&running.emulator)));
        if let Some(every) = args.sync_every {
            let emulator = Arc::clone(&running.emulator);
            tokio::spawn(async move {
                let start = tokio::time::Instant::now() + every;
                let mut ticks = tokio::time::interval_at(start, every);
                loop {
                    ticks.tick().await;
                    emulator.sync();
                }
            });
        }
        announce(&running).map_err(|e| Error::io("-", e))?;
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| Error::Other(format!("cannot wait for Ctrl-C: {e}")))?;
        running.stop().await;
        Ok(ExitCode::Success)
    })
}

/// Tells the script that started the emulator where it listens (stdout, flushed at once).
fn announce(running: &emulator::Running) -> std::io::Result<()> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", running.url)?;
    if let Some(cert) = &running.cert_path {
        writeln!(stdout, "certificate {}", cert.display())?;
    }
    stdout.flush()
}
