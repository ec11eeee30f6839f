//! A sheet's run slot: one run at a time per sheet. Commands that start a run take the slot
//! (the page's run route and the workflow API's calls on a sheet); commands that change
//! what a run reads wait for it to be free.

use axum::http::StatusCode;

use super::http::ApiError;
use super::{lock, OpenSheet};

/// How long a run posted after `run_finished` waits for the previous run to save its
/// results before the answer is 409.
const SAVING_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a run is executing on the sheet: it holds the run slot and has not sent
/// `run_finished` (after which it only saves its results).
pub(super) fn executing(open: &OpenSheet) -> bool {
    let holder = open.run_number.load(std::sync::atomic::Ordering::SeqCst);
    lock(&open.run).is_some() && open.live.last_finished_run() != Some(holder)
}

/// Takes the sheet's run slot for `token`, returning the new run's number (see [`settle`]).
pub(super) async fn claim_run_slot(
    open: &OpenSheet,
    token: &tokio_util::sync::CancellationToken,
) -> Result<u64, ApiError> {
    settle(open, Some(token))
        .await
        .map(|n| n.expect("a claim answers its run number"))
}

/// Waits until no run holds the sheet, then takes the slot for `claim` if given (returning
/// the new run's number). A run still executing is a 409; a run that has finished
/// (`run_finished` was sent) but is still saving its results — the cache and sheet flush
/// after it, for tens to hundreds of milliseconds — is waited for (at most
/// [`SAVING_WAIT`]), so a command sent as soon as the page sees `run_finished` is accepted.
async fn settle(
    open: &OpenSheet,
    claim: Option<&tokio_util::sync::CancellationToken>,
) -> Result<Option<u64>, ApiError> {
    use std::sync::atomic::Ordering;
    let busy = || {
        ApiError(
            StatusCode::CONFLICT,
            "a run is in progress on this sheet".into(),
        )
    };
    let deadline = tokio::time::Instant::now() + SAVING_WAIT;
    loop {
        // Created before the check, so a notification between the two is not missed.
        let done = open.run_done.notified();
        {
            let mut slot = lock(&open.run);
            if slot.is_none() {
                let Some(token) = claim else {
                    return Ok(None);
                };
                *slot = Some(token.clone());
                let number = open.sheet.pipeline().runs_started() + 1;
                open.run_number.store(number, Ordering::SeqCst);
                return Ok(Some(number));
            }
            let holder = open.run_number.load(Ordering::SeqCst);
            if open.live.last_finished_run() != Some(holder) {
                return Err(busy());
            }
        }
        if tokio::time::timeout_at(deadline, done).await.is_err() {
            return Err(busy());
        }
    }
}

/// Waits for the sheet to be idle: a run still executing is a 409; a run that has finished
/// executing but is still saving its results is waited for (see [`claim_run_slot`]).
pub(super) async fn ensure_idle(open: &OpenSheet) -> Result<(), ApiError> {
    settle(open, None).await.map(drop)
}
