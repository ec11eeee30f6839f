//! [`Pipeline::run_batch`]: a worker's loop over a batch. Each of its slots claims an item,
//! runs it on a fresh workspace (the workflow API's call path: the same input parsing and
//! outputs), renews the claim while it runs, and writes the item's end through its claim.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::{Batch, BatchClaim, DEFAULT_CONCURRENCY, DEFAULT_LEASE, DEFAULT_MAX_CLAIMS};
use crate::exec::{CallAnswer, TerminalProgress};
use crate::node::event::error_chain;
use crate::{Error, Pipeline};

/// The shortest lease [`BatchOptions::lease`] takes: claims are renewed every third of it.
const MIN_LEASE: Duration = Duration::from_millis(100);
/// The longest a slot with nothing to claim waits before it looks again.
const MAX_IDLE_WAIT: Duration = Duration::from_millis(500);

/// The callback of [`BatchOptions::on_update`].
type OnUpdate = Arc<dyn Fn(&BatchUpdate) + Send + Sync>;

/// How [`Pipeline::run_batch`] runs a batch.
#[derive(Clone)]
pub struct BatchOptions {
    concurrency: usize,
    lease: Duration,
    worker: Option<String>,
    retry_failed: bool,
    max_claims: u32,
    item_timeout: Option<Duration>,
    on_update: Option<OnUpdate>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            concurrency: DEFAULT_CONCURRENCY,
            lease: DEFAULT_LEASE,
            worker: None,
            retry_failed: true,
            max_claims: DEFAULT_MAX_CLAIMS,
            item_timeout: None,
            on_update: None,
        }
    }
}

impl std::fmt::Debug for BatchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchOptions")
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("worker", &self.worker)
            .field("retry_failed", &self.retry_failed)
            .field("max_claims", &self.max_claims)
            .field("item_timeout", &self.item_timeout)
            .field("on_update", &self.on_update.is_some())
            .finish()
    }
}

impl BatchOptions {
    /// Items this worker runs at once (default [`DEFAULT_CONCURRENCY`]; at least 1). Each
    /// runs on a workspace of its own; their nodes share the pipeline's limits.
    pub fn concurrency(mut self, items: usize) -> Self {
        self.concurrency = items.max(1);
        self
    }

    /// How long a claim lasts unless renewed (default [`DEFAULT_LEASE`]; at least 100 ms).
    /// Claims are renewed every third of it while their items run, so it bounds how long an
    /// item whose worker died waits for another, not how long an item may take.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(MIN_LEASE);
        self
    }

    /// This worker's name in the claims (default: host name and process id). Workers of
    /// one batch need different names.
    pub fn worker(mut self, name: impl Into<String>) -> Self {
        self.worker = Some(name.into());
        self
    }

    /// Whether failed items are made pending again when the run starts (default true).
    pub fn retry_failed(mut self, retry: bool) -> Self {
        self.retry_failed = retry;
        self
    }

    /// How many claims an item gets when every worker that ran it stopped before it ended
    /// (default [`DEFAULT_MAX_CLAIMS`]; at least 1): past them, the next worker to find its
    /// lease ended marks it failed ([`BatchEvent::GivenUp`]) instead of running it again.
    /// Such an item runs once more when the batch is run again with
    /// [`BatchOptions::retry_failed`].
    pub fn max_claims(mut self, claims: u32) -> Self {
        self.max_claims = claims.max(1);
        self
    }

    /// The longest one item may run here: past it, its run is cancelled and the item
    /// fails ("timed out"). Default: no limit (each node has its own timeouts), but a
    /// claim is renewed for as long as its item runs, so an item that hangs holds its slot
    /// until then.
    pub fn item_timeout(mut self, timeout: Duration) -> Self {
        self.item_timeout = Some(timeout);
        self
    }

    /// Called on this worker's progress: each item it claims, finishes, fails or loses.
    /// Called from the worker's tasks: keep it quick.
    pub fn on_update(mut self, callback: impl Fn(&BatchUpdate) + Send + Sync + 'static) -> Self {
        self.on_update = Some(Arc::new(callback));
        self
    }

    /// The worker name this run uses.
    pub fn worker_name(&self) -> String {
        self.worker.clone().unwrap_or_else(default_worker)
    }
}

/// `host:pid`.
fn default_worker() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Something that happened to an item, in this worker.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BatchEvent {
    /// This worker claimed an item and starts running it.
    Claimed {
        /// The item.
        item: u64,
        /// Which claim of the item this is (1 for the first).
        attempt: u32,
        /// The worker whose claim had expired, when this one took the item over.
        #[serde(skip_serializing_if = "Option::is_none")]
        reclaimed_from: Option<String>,
    },
    /// An item is done: its outputs are stored in its row, its results in the cache.
    Done {
        /// The item.
        item: u64,
        /// How long it took here.
        elapsed_ms: f64,
        /// The nodes that ran.
        computed: Vec<String>,
        /// The nodes served from the cache.
        cached: Vec<String>,
        /// Its outputs by name.
        outputs: Map<String, Json>,
    },
    /// An item failed: its error is stored in its row.
    Failed {
        /// The item.
        item: u64,
        /// How long it took here.
        elapsed_ms: f64,
        /// Why, with the cause chain.
        error: String,
    },
    /// An item was given up: its lease ended after [`BatchOptions::max_claims`] claims,
    /// every worker that ran it having stopped before it finished. It is failed, with an
    /// error saying so.
    GivenUp {
        /// The item.
        item: u64,
        /// How many times it was claimed.
        claims: u32,
        /// The last worker that claimed it.
        #[serde(skip_serializing_if = "Option::is_none")]
        last_worker: Option<String>,
    },
    /// This worker's claim on an item ended and another worker took the item over (this
    /// one was stopped or cut off for longer than the lease): nothing it computed for the
    /// item was written there.
    Lost {
        /// The item.
        item: u64,
    },
}

/// An event of [`BatchOptions::on_update`], with where this worker's run stands.
#[derive(Clone, Debug, Serialize)]
pub struct BatchUpdate {
    /// The batch.
    pub batch: String,
    /// This worker.
    pub worker: String,
    /// What happened.
    #[serde(flatten)]
    pub event: BatchEvent,
    /// Items this run finished so far.
    pub done_here: usize,
    /// Items that failed in this run so far.
    pub failed_here: usize,
    /// Items already done when this run started.
    pub skipped: usize,
    /// Items in the batch.
    pub total: usize,
}

/// An item that failed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    /// The item.
    pub item: u64,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// Why, with the cause chain.
    pub error: String,
}

/// What a worker's run of a batch did, and where the batch stands at its end.
#[derive(Clone, Debug, Serialize)]
pub struct BatchSummary {
    /// The batch.
    pub batch: String,
    /// Its pipeline.
    pub pipeline: String,
    /// This worker.
    pub worker: String,
    /// Items in the batch.
    pub total: usize,
    /// Items done at the end, by any worker.
    pub done: u64,
    /// The items this run finished, in the order it finished them.
    pub done_here: Vec<u64>,
    /// Items already done when this run started (not run again).
    pub skipped: u64,
    /// The batch's failed items at the end, with their errors.
    pub failed: Vec<ItemFailure>,
    /// Items whose claim this worker lost to another (see [`BatchEvent::Lost`]).
    pub lost: Vec<u64>,
    /// Items neither done nor failed at the end (claimed by a worker still running them).
    pub remaining: u64,
    /// How long the run took.
    pub elapsed_ms: f64,
}

impl BatchSummary {
    /// Whether every item of the batch is done.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.remaining == 0 && self.done as usize == self.total
    }
}

impl Batch {
    /// The failed items, with their errors.
    pub fn failures(&self) -> Result<Vec<ItemFailure>, Error> {
        Ok(self
            .backend()
            .failures(self.id)?
            .into_iter()
            .map(|(item, worker, error)| ItemFailure {
                item: item.max(0) as u64,
                worker,
                error,
            })
            .collect())
    }
}

/// Runs a database call on the blocking pool (the backends block).
async fn blocking<R: Send + 'static>(
    call: impl FnOnce() -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| Error::Io {
            context: "a batch database call".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// How an item's run ended here.
enum ItemEnd {
    /// The answer (boxed: it is much larger than the other cases).
    Done(Box<CallAnswer>),
    Failed(String),
    /// The claim was taken over while the item ran.
    Lost,
}

/// What this run did so far.
#[derive(Default)]
struct Tally {
    done: Vec<u64>,
    failed: usize,
    lost: Vec<u64>,
}

/// One run of a batch by this worker.
struct Worker<'a> {
    pipeline: &'a Pipeline,
    batch: &'a Batch,
    options: &'a BatchOptions,
    name: String,
    skipped: usize,
    /// The claims this run's slots hold: `(item, attempt)`.
    held: Mutex<HashSet<(i64, i64)>>,
    tally: Mutex<Tally>,
}

impl Pipeline {
    /// Runs the pipeline over the items of `batch` not done yet, as one worker of it
    /// (others may be running it at the same time, elsewhere), until no item is left: see
    /// [the module](crate::sheet::batch). Each item runs on a fresh workspace over this
    /// pipeline's cache, at most [`BatchOptions::concurrency`] at once.
    ///
    /// An item that fails (a node fails, an input is unknown or of the wrong type) is
    /// stored as failed with its error and does not stop the others. The run ends when
    /// every item is done or failed; an item another worker holds is waited for, and taken
    /// over if its lease ends. An `Err` is a database failure: what was done stays done,
    /// and a new run goes on from there.
    pub async fn run_batch(
        &self,
        batch: &Batch,
        options: BatchOptions,
    ) -> Result<BatchSummary, Error> {
        if batch.pipeline() != self.name() {
            return Err(Error::Batch {
                batch: batch.name().to_string(),
                message: format!(
                    "it belongs to pipeline `{}`, not to `{}`",
                    batch.pipeline(),
                    self.name()
                ),
            });
        }
        let started = Instant::now();
        if options.retry_failed {
            let b = batch.clone();
            blocking(move || b.retry_failed()).await?;
        }
        let b = batch.clone();
        let before = blocking(move || b.counts()).await?;
        let worker = Worker {
            pipeline: self,
            batch,
            options: &options,
            name: options.worker_name(),
            skipped: before.done as usize,
            held: Mutex::new(HashSet::new()),
            tally: Mutex::new(Tally::default()),
        };
        tracing::info!(
            batch = batch.name(),
            worker = worker.name,
            items = batch.len(),
            done = before.done,
            "running a batch"
        );
        futures::future::try_join_all((0..options.concurrency).map(|_| worker.slot())).await?;
        let b = batch.clone();
        let (after, failed) = blocking(move || Ok((b.counts()?, b.failures()?))).await?;
        let tally = worker.tally.into_inner().unwrap();
        Ok(BatchSummary {
            batch: batch.name().to_string(),
            pipeline: batch.pipeline().to_string(),
            worker: worker.name,
            total: batch.len(),
            done: after.done,
            done_here: tally.done,
            skipped: before.done,
            failed,
            lost: tally.lost,
            remaining: after.pending + after.claimed,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

impl Worker<'_> {
    /// Claims and runs items until none is left to claim or to wait for.
    async fn slot(&self) -> Result<(), Error> {
        loop {
            let (batch, name, lease) = (self.batch.clone(), self.name.clone(), self.options.lease);
            let max_claims = self.options.max_claims;
            let (claim, given_up) =
                blocking(move || batch.claim_at_most(&name, lease, max_claims)).await?;
            for abandoned in given_up {
                let item = abandoned.item.max(0) as u64;
                let claims = abandoned.claims.clamp(0, u32::MAX as i64) as u32;
                tracing::warn!(
                    batch = self.batch.name(),
                    item,
                    claims,
                    "giving up an item: every worker that ran it stopped before it finished"
                );
                self.tally.lock().unwrap().failed += 1;
                self.emit(BatchEvent::GivenUp {
                    item,
                    claims,
                    last_worker: abandoned.last_worker,
                });
            }
            if let Some(claim) = claim {
                let key = (claim.item, claim.attempt);
                self.held.lock().unwrap().insert(key);
                let ran = self.run(claim).await;
                self.held.lock().unwrap().remove(&key);
                ran?;
                continue;
            }
            let batch = self.batch.clone();
            let state = blocking(move || batch.backend().batch_state(batch.id)).await?;
            // Claims this run does not hold: another worker's, or a dead one's (which
            // this one takes over when its lease ends).
            let others: Vec<i64> = {
                let held = self.held.lock().unwrap();
                state
                    .claims
                    .iter()
                    .filter(|c| !held.contains(&(c.item, c.attempt)))
                    .map(|c| c.expires_in_ms)
                    .collect()
            };
            if state.pending == 0 && others.is_empty() {
                return Ok(());
            }
            let wait = if state.pending > 0 {
                // Pending, but locked by a concurrent claimer: look again soon.
                Duration::from_millis(20)
            } else {
                let soonest = others.into_iter().min().unwrap_or(0).max(0) as u64;
                Duration::from_millis(soonest + 10).min(MAX_IDLE_WAIT)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs a claimed item and writes its end through the claim.
    async fn run(&self, claim: BatchClaim) -> Result<(), Error> {
        let item = claim.item();
        if let Some(from) = claim.reclaimed_from() {
            tracing::info!(
                batch = self.batch.name(),
                item,
                from,
                "taking over an item whose claim expired"
            );
        }
        self.emit(BatchEvent::Claimed {
            item,
            attempt: claim.attempt(),
            reclaimed_from: claim.reclaimed_from().map(str::to_string),
        });
        let started = Instant::now();
        let end = self.compute(&claim).await?;
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        let (written, event) = match end {
            ItemEnd::Lost => (false, BatchEvent::Lost { item }),
            ItemEnd::Done(answer) => {
                let outputs = answer.outputs;
                let stored = outputs.clone();
                let c = claim.clone();
                let written = blocking(move || c.finish(&stored, elapsed)).await?;
                let event = BatchEvent::Done {
                    item,
                    elapsed_ms,
                    computed: answer.computed,
                    cached: answer.cached,
                    outputs,
                };
                (written, event)
            }
            ItemEnd::Failed(error) => {
                let (c, e) = (claim.clone(), error.clone());
                let written = blocking(move || c.fail(&e, elapsed)).await?;
                (
                    written,
                    BatchEvent::Failed {
                        item,
                        elapsed_ms,
                        error,
                    },
                )
            }
        };
        {
            let mut tally = self.tally.lock().unwrap();
            match (&event, written) {
                (BatchEvent::Done { .. }, true) => tally.done.push(item),
                (BatchEvent::Failed { .. }, true) => tally.failed += 1,
                _ => tally.lost.push(item),
            }
        }
        if written {
            self.emit(event);
        } else {
            tracing::warn!(
                batch = self.batch.name(),
                item,
                "the claim was taken over by another worker: this result is not written"
            );
            self.emit(BatchEvent::Lost { item });
        }
        Ok(())
    }

    /// Runs the item on a fresh workspace, renewing the claim every third of the lease;
    /// stops (cancelling the run) when the claim turns out to be lost.
    async fn compute(&self, claim: &BatchClaim) -> Result<ItemEnd, Error> {
        let Some(inputs) = claim.inputs().as_object() else {
            return Ok(ItemEnd::Failed(
                "its stored inputs are not a JSON object".into(),
            ));
        };
        let workspace = self.pipeline.new_workspace();
        // Items run side by side: one terminal bar each would be noise.
        workspace.set_terminal_progress(TerminalProgress::Never);
        if let Err(e) = workspace.set_call_inputs(inputs) {
            return Ok(ItemEnd::Failed(e));
        }
        let every = self.options.lease / 3;
        let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let call = workspace.call();
        tokio::pin!(call);
        let timeout = self.options.item_timeout;
        let timed_out = async {
            match timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timed_out);
        let answer = loop {
            tokio::select! {
                answer = &mut call => break answer,
                // Dropping the call cancels its run.
                () = &mut timed_out => {
                    let limit = timeout.unwrap_or_default().as_secs_f64();
                    return Ok(ItemEnd::Failed(format!(
                        "timed out: still running after {limit} s (the batch's item timeout)"
                    )));
                }
                _ = renewals.tick() => {
                    let (c, lease) = (claim.clone(), self.options.lease);
                    if !blocking(move || c.renew(lease)).await? {
                        // Dropping the call cancels its run: another worker has the item.
                        return Ok(ItemEnd::Lost);
                    }
                }
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => return Ok(ItemEnd::Failed(error_chain(&e))),
        };
        // The results reach the cache (and its shared store) before the row says done,
        // so a done row never names bytes that are not stored.
        let cache = workspace.cache().clone();
        let keys = workspace.live_keys();
        let unsaved = blocking(move || Ok(cache.flush())).await?;
        if let Some(failure) = unsaved.iter().find(|f| keys.contains(&f.key)) {
            return Ok(ItemEnd::Failed(format!(
                "its results could not be stored in the cache: {}",
                failure.error
            )));
        }
        if !answer.failed.is_empty() {
            let errors: Vec<String> = answer.failed.iter().map(|f| f.error.clone()).collect();
            return Ok(ItemEnd::Failed(errors.join("; ")));
        }
        if !answer.missing_outputs.is_empty() {
            return Ok(ItemEnd::Failed(format!(
                "outputs not computed: {}",
                answer.missing_outputs.join(", ")
            )));
        }
        Ok(ItemEnd::Done(Box::new(answer)))
    }

    fn emit(&self, event: BatchEvent) {
        let Some(callback) = &self.options.on_update else {
            return;
        };
        let update = {
            let tally = self.tally.lock().unwrap();
            BatchUpdate {
                batch: self.batch.name().to_string(),
                worker: self.name.clone(),
                event,
                done_here: tally.done.len(),
                failed_here: tally.failed,
                skipped: self.skipped,
                total: self.batch.len(),
            }
        };
        callback(&update);
    }
}
