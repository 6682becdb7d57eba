//! Configuration of the built-in attested provisioner (`/tee/provisioning`): which evidence is
//! accepted, against which policy and collateral, how often a service's environment may be
//! released, how long a nonce lives. Flattened into `ServerConfig`.

use std::path::PathBuf;

use clap::Args;
use sms_attest::TcbStatus;

/// iExec's name for the advisories to ignore, read when neither `--ignored-advisories` nor
/// `SMS_IGNORED_ADVISORIES` is given.
pub const IEXEC_IGNORED_ADVISORIES_ENV: &str = "IEXEC_IGNORED_SGX_ADVISORIES";

/// The switch that accepts simulated TEE evidence outside `--dev`.
pub const DANGEROUS_ALLOW_SIMULATED_TEE_FLAG: &str = "--dangerous-allow-simulated-tee";
pub const DANGEROUS_ALLOW_SIMULATED_TEE_ENV: &str = "SMS_DANGEROUS_ALLOW_SIMULATED_TEE";
/// Its former names, refused at start-up.
pub const REMOVED_ALLOW_SIMULATED_TEE_FLAG: &str = "--allow-simulated-tee";
pub const REMOVED_ALLOW_SIMULATED_TEE_ENV: &str = "SMS_ALLOW_SIMULATED_TEE";

pub const DEFAULT_RELEASE_LIMIT: u32 = 1;
pub const DEFAULT_NONCE_TTL_SECS: u64 = 60;

/// The server's clock (`sms_core::clock`), re-exported where tests inject it.
pub use sms_core::clock::Clock;

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Attested provisioner")]
pub struct AttestArgs {
    /// DANGEROUS: accept simulated TEE evidence (a bare claim of measurement and report data,
    /// which proves nothing: secrets go to whoever asks) even without --dev, next to a real
    /// chain. Implied by --dev; `--dangerous-allow-simulated-tee=false` refuses it there too (to
    /// try real SGX/TDX evidence against a dev server). When on, it shows in a warning at every
    /// start, in /version (`simulatedTee`), in the X-Sms-Simulated-Tee header of /tee/* answers
    /// and in the sms_simulated_tee_enabled gauge.
    #[arg(long, env = DANGEROUS_ALLOW_SIMULATED_TEE_ENV, value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub dangerous_allow_simulated_tee: Option<bool>,

    /// The removed `--allow-simulated-tee` / `SMS_ALLOW_SIMULATED_TEE`: any value stops start-up
    /// with a message naming the flag that replaced it.
    #[arg(long = "allow-simulated-tee", env = REMOVED_ALLOW_SIMULATED_TEE_ENV, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true)]
    pub removed_allow_simulated_tee: Option<String>,

    /// JSON appraisal policy: {"accepted_tcb_statuses": [...], "ignored_advisories": [...],
    /// "rejected_advisories": [...], "dangerous_allow_debug": false}. Default: accept UpToDate
    /// and SWHardeningNeeded, refuse debug enclaves. The two options below add to it.
    #[arg(long, env = "SMS_ATTEST_POLICY", value_name = "FILE")]
    pub attest_policy: Option<PathBuf>,

    /// TCB statuses accepted besides the policy's, comma-separated (Intel's names, e.g.
    /// ConfigurationAndSWHardeningNeeded).
    #[arg(
        long,
        env = "SMS_ACCEPT_TCB_STATUS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub accept_tcb_status: Vec<TcbStatus>,

    /// Intel advisory ids to ignore, comma-separated (e.g. INTEL-SA-00615): an advisory-only
    /// status whose advisories are all ignored is accepted. Env fallback:
    /// IEXEC_IGNORED_SGX_ADVISORIES.
    #[arg(
        long,
        env = "SMS_IGNORED_ADVISORIES",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub ignored_advisories: Vec<String>,

    /// PCCS (or Intel PCS) base URL to fetch DCAP collateral from, cached per FMSPC until it
    /// expires.
    #[arg(
        long,
        env = "SMS_PCCS_URL",
        value_name = "URL",
        conflicts_with = "collateral_dir"
    )]
    pub pccs_url: Option<String>,

    /// Offline DCAP collateral: a JSON file or a directory of them (one per TEE and FMSPC).
    /// Without this and --pccs-url, SGX and TDX evidence is refused with COLLATERAL_MISSING.
    #[arg(long, env = "SMS_COLLATERAL_DIR", value_name = "PATH")]
    pub collateral_dir: Option<PathBuf>,

    /// How many times the environment of one service of one session may be released. A
    /// restarted enclave needs a new session when the limit is reached. 1 to 100.
    #[arg(long, env = "SMS_RELEASE_LIMIT", value_name = "N", default_value_t = DEFAULT_RELEASE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub release_limit: u32,

    /// Lifetime of a provisioning nonce, in seconds. 1 to 3600.
    #[arg(long, env = "SMS_NONCE_TTL_SECS", value_name = "SECONDS", default_value_t = DEFAULT_NONCE_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub nonce_ttl_secs: u64,

    /// Injected clock (tests): every expiry and window of the server reads it (sessions,
    /// challenges, nonces, v2 operations, audit); the system clock when `None`.
    #[arg(skip)]
    pub clock: Option<Clock>,
}

impl AttestArgs {
    /// Whether simulated evidence is accepted: `--dangerous-allow-simulated-tee[=BOOL]` when
    /// given, else `dev`.
    pub fn simulated_allowed(&self, dev: bool) -> bool {
        self.dangerous_allow_simulated_tee.unwrap_or(dev)
    }

    /// Refuses the removed spelling of the switch, whatever its value: an operator who set it
    /// must decide again, knowing the new name says what it does.
    pub fn check_removed_flags(&self) -> Result<(), String> {
        match &self.removed_allow_simulated_tee {
            None => Ok(()),
            Some(value) => Err(format!(
                "{REMOVED_ALLOW_SIMULATED_TEE_FLAG} / {REMOVED_ALLOW_SIMULATED_TEE_ENV} (given \"{}\") is no longer accepted: \
                 simulated TEE evidence is accepted only with --dev, or with {DANGEROUS_ALLOW_SIMULATED_TEE_FLAG} \
                 (env {DANGEROUS_ALLOW_SIMULATED_TEE_ENV}=true); {DANGEROUS_ALLOW_SIMULATED_TEE_FLAG}=false refuses it \
                 in --dev. Remove the old setting",
                value.chars().take(16).collect::<String>()
            )),
        }
    }
}

impl Default for AttestArgs {
    fn default() -> Self {
        AttestArgs {
            dangerous_allow_simulated_tee: None,
            removed_allow_simulated_tee: None,
            attest_policy: None,
            accept_tcb_status: Vec::new(),
            ignored_advisories: Vec::new(),
            pccs_url: None,
            collateral_dir: None,
            release_limit: DEFAULT_RELEASE_LIMIT,
            nonce_ttl_secs: DEFAULT_NONCE_TTL_SECS,
            clock: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        attest: AttestArgs,
    }

    fn parse(args: &[&str]) -> AttestArgs {
        Cli::try_parse_from(std::iter::once("sms").chain(args.iter().copied()))
            .unwrap()
            .attest
    }

    #[test]
    fn simulated_evidence_follows_dev_unless_the_dangerous_flag_says_otherwise() {
        let none = parse(&[]);
        assert!(none.simulated_allowed(true));
        assert!(!none.simulated_allowed(false));
        let on = parse(&["--dangerous-allow-simulated-tee"]);
        assert_eq!(on.dangerous_allow_simulated_tee, Some(true));
        assert!(on.simulated_allowed(false));
        let off = parse(&["--dangerous-allow-simulated-tee=false"]);
        assert!(!off.simulated_allowed(true));
        assert!(Cli::try_parse_from(["sms", "--dangerous-allow-simulated-tee=maybe"]).is_err());
        for args in [&[][..], &["--dangerous-allow-simulated-tee"][..]] {
            assert_eq!(parse(args).check_removed_flags(), Ok(()));
        }
    }

    #[test]
    fn the_removed_flag_is_parsed_only_to_be_refused() {
        for (args, shown) in [
            (&["--allow-simulated-tee"][..], "true"),
            (&["--allow-simulated-tee=false"][..], "false"),
            (
                &[
                    "--allow-simulated-tee=yes",
                    "--dangerous-allow-simulated-tee",
                ][..],
                "yes",
            ),
        ] {
            let e = parse(args).check_removed_flags().unwrap_err();
            assert!(e.contains(&format!("(given \"{shown}\")")), "{e}");
            assert!(e.contains(DANGEROUS_ALLOW_SIMULATED_TEE_FLAG), "{e}");
            assert!(e.contains(DANGEROUS_ALLOW_SIMULATED_TEE_ENV), "{e}");
            assert!(e.contains(REMOVED_ALLOW_SIMULATED_TEE_ENV), "{e}");
        }
    }
}
