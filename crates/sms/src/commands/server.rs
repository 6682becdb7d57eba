use clap::{Args, Subcommand};
use sms_server::ServerConfig;

use crate::output::Output;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    #[command(flatten)]
    pub config: ServerConfig,
}

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Print the SMS identity (the key release answers are signed with, which enclaves pin)
    /// from the store, without starting the server; creates it if this store has none yet.
    /// Takes the same store options as `sms server` (--data-dir, --database-url, ...).
    Identity(IdentityArgs),
}

#[derive(Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    pub config: ServerConfig,
}

async fn identity(args: IdentityArgs, out: &Output) -> anyhow::Result<()> {
    let identity = sms_server::store_identity(&args.config).await?;
    out.done(identity.human(), identity.report());
    Ok(())
}

pub async fn run(args: ServerArgs, out: &Output) -> anyhow::Result<()> {
    if let Some(ServerCommand::Identity(identity_args)) = args.command {
        return identity(identity_args, out).await;
    }
    Ok(sms_server::serve(args.config, |server| {
        let (human, data) = server.startup_report();
        out.done(human, data);
    })
    .await?)
}
