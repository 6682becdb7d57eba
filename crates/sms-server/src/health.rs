//! `/health` answers from state a background task keeps up to date: one store ping per
//! interval, whatever the number of callers (a flood of `/health` costs the store nothing).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sms_store::Store;

/// How often the store is pinged.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// The outcome of the last store ping.
#[derive(Clone, Debug)]
struct Observation {
    at: Instant,
    result: Result<(), String>,
}

pub struct Health {
    last: Mutex<Observation>,
    /// Past this age the last observation no longer counts (the pinger is stuck): DOWN.
    stale_after: Duration,
}

impl Health {
    /// Pings once now (so the first `/health` tells the truth), then keeps pinging in the
    /// background until the returned handle is aborted.
    pub async fn start(
        store: Store,
        store_timeout: Duration,
    ) -> (Arc<Self>, tokio::task::AbortHandle) {
        let health = Arc::new(Self {
            last: Mutex::new(Observation {
                at: Instant::now(),
                result: Err("not checked yet".into()),
            }),
            stale_after: INTERVAL * 2 + store_timeout + Duration::from_secs(1),
        });
        health.observe(&store).await;
        let weak = Arc::downgrade(&health);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(health) = weak.upgrade() else { return };
                health.observe(&store).await;
            }
        });
        (health, task.abort_handle())
    }

    async fn observe(&self, store: &Store) {
        let result = store.ping().await.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "health check: store unavailable");
        }
        metrics::gauge!("sms_store_up").set(if result.is_ok() { 1.0 } else { 0.0 });
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = Observation {
            at: Instant::now(),
            result,
        };
    }

    /// `Ok` when the last ping succeeded and is recent; the cause otherwise.
    pub fn status(&self) -> Result<(), String> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let age = last.at.elapsed();
        if age > self.stale_after {
            return Err(format!(
                "store unavailable: the last store check finished {} ms ago",
                age.as_millis()
            ));
        }
        last.result
    }
}
