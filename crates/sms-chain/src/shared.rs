//! [`SharedReads`]: a [`Ledger`] in front of another that makes random or repeated ids cheap.
//!
//! - Negative cache: "does not exist" (an unknown task, deal, app, dataset, workerpool, or an
//!   address with no owner) is remembered for [`SharedReadsConfig::miss_ttl`] in a bounded
//!   cache, so asking again for the same unknown id costs no RPC call.
//! - Single flight: concurrent reads of the same fact share one call to the inner ledger; the
//!   call runs in its own task, so a caller that gives up does not cancel it for the others.
//!
//! Found facts are not cached here: the inner ledger has its own caches with their own
//! freshness rules (an owner or a task status is never older than `fresh_for`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use quick_cache::sync::Cache;
use sms_core::ledger::{AppEntry, DatasetEntry, Deal, Task, WorkerpoolEntry};
use sms_core::{Address, B256};

use crate::{Ledger, LedgerError};

/// Bounds of [`SharedReads`].
#[derive(Clone, Copy, Debug)]
pub struct SharedReadsConfig {
    /// How long "does not exist" is remembered; zero turns the negative cache off.
    pub miss_ttl: Duration,
    /// Most "does not exist" answers remembered (the oldest go first).
    pub miss_capacity: usize,
    /// Most distinct reads in flight at once; past it a read runs on its own (unshared).
    pub max_flights: usize,
}

impl Default for SharedReadsConfig {
    fn default() -> Self {
        Self {
            miss_ttl: Duration::from_secs(2),
            miss_capacity: 10_000,
            max_flights: 4_096,
        }
    }
}

/// One fact the ledger is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Read {
    Owner(Address),
    App(Address),
    Dataset(Address),
    Workerpool(Address),
    Deal(B256),
    Task(B256),
}

/// The answer to a [`Read`] (`None` inside: does not exist). Boxed: the answers differ in size.
#[derive(Clone, Debug)]
enum Answer {
    Owner(Option<Address>),
    App(Option<Box<AppEntry>>),
    Dataset(Option<Box<DatasetEntry>>),
    Workerpool(Option<Box<WorkerpoolEntry>>),
    Deal(Option<Box<Deal>>),
    Task(Option<Box<Task>>),
}

impl Answer {
    fn is_missing(&self) -> bool {
        match self {
            Answer::Owner(v) => v.is_none(),
            Answer::App(v) => v.is_none(),
            Answer::Dataset(v) => v.is_none(),
            Answer::Workerpool(v) => v.is_none(),
            Answer::Deal(v) => v.is_none(),
            Answer::Task(v) => v.is_none(),
        }
    }

    /// The "does not exist" answer of `read`.
    fn missing(read: Read) -> Self {
        match read {
            Read::Owner(_) => Answer::Owner(None),
            Read::App(_) => Answer::App(None),
            Read::Dataset(_) => Answer::Dataset(None),
            Read::Workerpool(_) => Answer::Workerpool(None),
            Read::Deal(_) => Answer::Deal(None),
            Read::Task(_) => Answer::Task(None),
        }
    }
}

type Flight = Shared<BoxFuture<'static, Result<Answer, LedgerError>>>;

/// The state shared with the tasks that run the reads.
struct Inner {
    ledger: Arc<dyn Ledger>,
    config: SharedReadsConfig,
    /// "Does not exist", with when it was asked.
    misses: Cache<Read, Instant>,
    flights: Mutex<HashMap<Read, Flight>>,
}

/// The decorator; see the module documentation.
pub struct SharedReads {
    inner: Arc<Inner>,
}

impl SharedReads {
    pub fn new(ledger: Arc<dyn Ledger>, config: SharedReadsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                ledger,
                misses: Cache::new(config.miss_capacity.max(1)),
                flights: Mutex::new(HashMap::new()),
                config,
            }),
        }
    }

    /// Entries in the negative cache.
    pub fn misses_len(&self) -> usize {
        self.inner.misses.len()
    }

    /// Distinct reads in flight.
    pub fn flights_len(&self) -> usize {
        self.inner.flights().len()
    }

    async fn read(&self, read: Read) -> Result<Answer, LedgerError> {
        if self.inner.remembered_missing(read) {
            metrics::counter!("sms_chain_negative_cache_hits_total").increment(1);
            return Ok(Answer::missing(read));
        }
        match self.join_or_start(read) {
            Some(flight) => flight.await,
            // Too many distinct reads in flight: this one is not shared.
            None => self.inner.ask(read).await,
        }
    }

    /// The flight of `read`, joined or started; `None` when the map is full.
    fn join_or_start(&self, read: Read) -> Option<Flight> {
        let mut flights = self.inner.flights();
        if let Some(flight) = flights.get(&read) {
            metrics::counter!("sms_chain_shared_reads_total").increment(1);
            return Some(flight.clone());
        }
        if flights.len() >= self.inner.config.max_flights {
            return None;
        }
        let flight = Inner::fly(self.inner.clone(), read);
        flights.insert(read, flight.clone());
        metrics::gauge!("sms_chain_reads_in_flight").set(flights.len() as f64);
        Some(flight)
    }
}

impl Inner {
    fn flights(&self) -> MutexGuard<'_, HashMap<Read, Flight>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remembered_missing(&self, read: Read) -> bool {
        if self.config.miss_ttl.is_zero() {
            return false;
        }
        match self.misses.get(&read) {
            Some(at) if at.elapsed() < self.config.miss_ttl => true,
            Some(_) => {
                self.misses.remove(&read);
                false
            }
            None => false,
        }
    }

    /// Starts the read in its own task: it ends (bounded by the inner ledger's timeout) even
    /// if every caller gives up, and takes itself out of the map when done.
    fn fly(this: Arc<Self>, read: Read) -> Flight {
        let task = tokio::spawn(async move {
            let answer = this.ask(read).await;
            // Remembered before the flight leaves the map: no window where a caller would
            // find neither.
            let mut flights = this.flights();
            flights.remove(&read);
            metrics::gauge!("sms_chain_reads_in_flight").set(flights.len() as f64);
            drop(flights);
            answer
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(LedgerError::Unavailable(format!(
                    "chain read task failed: {e}"
                )))
            })
        }
        .boxed()
        .shared()
    }

    async fn ask(&self, read: Read) -> Result<Answer, LedgerError> {
        let asked = Instant::now();
        let l = &self.ledger;
        let answer = match read {
            Read::Owner(a) => Answer::Owner(l.owner_of(a).await?),
            Read::App(a) => Answer::App(l.app(a).await?.map(Box::new)),
            Read::Dataset(a) => Answer::Dataset(l.dataset(a).await?.map(Box::new)),
            Read::Workerpool(a) => Answer::Workerpool(l.workerpool(a).await?.map(Box::new)),
            Read::Deal(id) => Answer::Deal(l.deal(id).await?.map(Box::new)),
            Read::Task(id) => Answer::Task(l.task(id).await?.map(Box::new)),
        };
        if answer.is_missing() && !self.config.miss_ttl.is_zero() {
            self.misses.insert(read, asked);
            metrics::gauge!("sms_chain_negative_cache_entries").set(self.misses.len() as f64);
        }
        Ok(answer)
    }
}

/// The answer of the wrong kind cannot happen (one [`Read`], one [`Answer`] variant): it would
/// be a bug here, reported as an unavailable ledger rather than a panic.
fn mismatch() -> LedgerError {
    LedgerError::Unavailable("internal: mismatched shared read".to_owned())
}

#[async_trait]
impl Ledger for SharedReads {
    async fn owner_of(&self, entry: Address) -> Result<Option<Address>, LedgerError> {
        match self.read(Read::Owner(entry)).await? {
            Answer::Owner(v) => Ok(v),
            _ => Err(mismatch()),
        }
    }

    async fn app(&self, address: Address) -> Result<Option<AppEntry>, LedgerError> {
        match self.read(Read::App(address)).await? {
            Answer::App(v) => Ok(v.map(|b| *b)),
            _ => Err(mismatch()),
        }
    }

    async fn dataset(&self, address: Address) -> Result<Option<DatasetEntry>, LedgerError> {
        match self.read(Read::Dataset(address)).await? {
            Answer::Dataset(v) => Ok(v.map(|b| *b)),
            _ => Err(mismatch()),
        }
    }

    async fn workerpool(&self, address: Address) -> Result<Option<WorkerpoolEntry>, LedgerError> {
        match self.read(Read::Workerpool(address)).await? {
            Answer::Workerpool(v) => Ok(v.map(|b| *b)),
            _ => Err(mismatch()),
        }
    }

    async fn deal(&self, deal_id: B256) -> Result<Option<Deal>, LedgerError> {
        match self.read(Read::Deal(deal_id)).await? {
            Answer::Deal(v) => Ok(v.map(|b| *b)),
            _ => Err(mismatch()),
        }
    }

    async fn task(&self, task_id: B256) -> Result<Option<Task>, LedgerError> {
        match self.read(Read::Task(task_id)).await? {
            Answer::Task(v) => Ok(v.map(|b| *b)),
            _ => Err(mismatch()),
        }
    }

    /// Not shared: each order is its own question, asked once per session.
    async fn check_dataset_order(
        &self,
        order: &sms_core::bulk::SignedDatasetOrder,
        deal: &Deal,
    ) -> Result<Result<(), sms_core::bulk::OrderRejection>, LedgerError> {
        self.inner.ledger.check_dataset_order(order, deal).await
    }

    fn describe(&self) -> String {
        self.inner.ledger.describe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Knows no task; counts the calls and takes 50 ms for each.
    #[derive(Default)]
    struct Counting {
        calls: AtomicU64,
    }

    #[async_trait]
    impl Ledger for Counting {
        async fn owner_of(&self, _: Address) -> Result<Option<Address>, LedgerError> {
            Ok(None)
        }
        async fn app(&self, _: Address) -> Result<Option<AppEntry>, LedgerError> {
            Ok(None)
        }
        async fn dataset(&self, _: Address) -> Result<Option<DatasetEntry>, LedgerError> {
            Ok(None)
        }
        async fn workerpool(&self, _: Address) -> Result<Option<WorkerpoolEntry>, LedgerError> {
            Ok(None)
        }
        async fn deal(&self, _: B256) -> Result<Option<Deal>, LedgerError> {
            Ok(None)
        }
        async fn task(&self, _: B256) -> Result<Option<Task>, LedgerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(None)
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    fn shared(miss_ttl: Duration) -> (Arc<Counting>, Arc<SharedReads>) {
        let counting = Arc::new(Counting::default());
        let config = SharedReadsConfig {
            miss_ttl,
            ..SharedReadsConfig::default()
        };
        let reads = Arc::new(SharedReads::new(counting.clone(), config));
        (counting, reads)
    }

    #[tokio::test]
    async fn concurrent_reads_of_one_fact_make_one_call() {
        let (counting, reads) = shared(Duration::ZERO);
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let reads = reads.clone();
                tokio::spawn(async move { reads.task(B256::repeat_byte(7)).await })
            })
            .collect();
        for c in calls {
            assert!(c.await.unwrap().unwrap().is_none());
        }
        assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
        assert_eq!(reads.flights_len(), 0, "finished flights leave the map");
    }

    #[tokio::test]
    async fn unknown_facts_are_remembered_for_the_ttl_only() {
        let (counting, reads) = shared(Duration::from_millis(300));
        for _ in 0..10 {
            assert!(reads.task(B256::repeat_byte(1)).await.unwrap().is_none());
        }
        assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
        assert_eq!(reads.misses_len(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(reads.task(B256::repeat_byte(1)).await.unwrap().is_none());
        assert_eq!(counting.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_cancel_the_read() {
        let (counting, reads) = shared(Duration::from_secs(5));
        let gave_up =
            tokio::time::timeout(Duration::from_millis(5), reads.task(B256::repeat_byte(2))).await;
        assert!(gave_up.is_err());
        assert!(reads.task(B256::repeat_byte(2)).await.unwrap().is_none());
        assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
    }
}
