//! The two calls of a result-proxy login (`iexec storage init` for ipfs): fetch the challenge,
//! post its signature, read the token. The answers are bounded in time and size; what the
//! wallet signs is decided by `sms_core::result_proxy`, not by the proxy.

use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use anyhow::Context;
use reqwest::StatusCode;
use sms_core::error_chain;
use sms_core::result_proxy::{ChallengeError, LoginChallenge};
use thiserror::Error;

/// The result proxy of iExec's production chain (bellecour, chain id 134).
pub const BELLECOUR_RESULT_PROXY: &str = "https://result.v8-bellecour.iex.ec";
/// Largest challenge or token answer read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Time allowed for each call.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The result proxy iExec runs for `chain_id`, when there is one.
pub fn default_url(chain_id: u64) -> Option<&'static str> {
    (chain_id == 134).then_some(BELLECOUR_RESULT_PROXY)
}

#[derive(Debug, Error)]
pub enum LoginError {
    #[error("invalid result proxy URL '{0}': expected http(s)://host[:port]")]
    Url(String),
    #[error("cannot reach the result proxy at {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("the result proxy answered {status} to {call}: {body}")]
    Status {
        call: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("the result proxy's answer to {call} is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge { call: &'static str },
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    #[error("cannot sign the result proxy's challenge: {0}")]
    Sign(String),
    #[error("the result proxy answered an empty or non-text token")]
    BadToken,
}

/// Logs `signer` in to the result proxy at `url` for `chain_id` and returns the token.
pub async fn login(
    url: &str,
    chain_id: u64,
    signer: &PrivateKeySigner,
) -> Result<String, LoginError> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(LoginError::Url(url.to_owned()));
    }
    crate::install_crypto_provider();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| network(base, &e))?;
    let address = signer.address().to_checksum(None);
    let chain = chain_id.to_string();

    let request = http
        .get(format!("{base}/results/challenge"))
        .query(&[("chainId", chain.as_str()), ("address", address.as_str())]);
    let body = read_bounded(base, "GET /results/challenge", request).await?;
    let challenge = LoginChallenge::parse(&body, chain_id)?;

    let login_body = challenge
        .login_body(signer)
        .map_err(|e| LoginError::Sign(e.to_string()))?;
    let request = http
        .post(format!("{base}/results/login"))
        .query(&[("chainId", chain.as_str())])
        .header("Content-Type", "text/plain")
        .body(login_body);
    let token = read_bounded(base, "POST /results/login", request).await?;
    let token = String::from_utf8(token).map_err(|_| LoginError::BadToken)?;
    let token = token.trim();
    if token.is_empty() || token.chars().any(char::is_control) {
        return Err(LoginError::BadToken);
    }
    Ok(token.to_owned())
}

fn network(url: &str, e: &reqwest::Error) -> LoginError {
    LoginError::Network {
        url: url.to_owned(),
        reason: error_chain(e),
    }
}

/// Sends `request`; a success answer's body, at most [`MAX_ANSWER_BYTES`].
async fn read_bounded(
    url: &str,
    call: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Vec<u8>, LoginError> {
    let mut response = request.send().await.map_err(|e| network(url, &e))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network(url, &e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(LoginError::TooLarge { call });
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(LoginError::Status {
            call,
            status,
            body: text.chars().take(200).collect(),
        });
    }
    Ok(body)
}

/// Logs in to the result proxy for the SMS's chain (or `chain_id`) and returns its token.
pub async fn token_for(
    client: &crate::SmsClient,
    signer: &PrivateKeySigner,
    url: Option<String>,
    chain_id: Option<u64>,
) -> anyhow::Result<String> {
    let chain_id = match chain_id {
        Some(id) => id,
        None => {
            client
                .v2_domain()
                .await
                .context("cannot learn the chain id from the SMS (give it with --chain-id)")?
                .chain_id
        }
    };
    let url = url
        .or_else(|| default_url(chain_id).map(str::to_owned))
        .with_context(|| {
            format!("no known result proxy for chain {chain_id}: give it with --result-proxy-url")
        })?;
    Ok(login(&url, chain_id, signer).await?)
}
