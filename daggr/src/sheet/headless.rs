//! `cargo daggr run --sheet NAME`: the headless run recorded in a sheet. When
//! [`RUN_SHEET_ENV`](crate::RUN_SHEET_ENV) is set, the executor's run handshake hands the
//! pipeline, the sheet's name and the inputs to [`run_on_sheet`], which it finds through
//! `SHEET_RUN_HOOKS` (a layer below never names this one). The run then happens on the
//! sheet's workspace: the inputs given are stored in the sheet (the ones not given keep
//! the sheet's), and the run is in its history, as a run from the inspector.

use linkme::distributed_slice;
use serde_json::{Map, Value as Json};

use crate::exec::{CallAnswer, SheetRunHook, SheetUsed, SHEET_RUN_HOOKS};
use crate::node::event::error_chain;
use crate::sheet::{Sheet, SheetStore};
use crate::{Error, Pipeline, Scope};

#[distributed_slice(SHEET_RUN_HOOKS)]
static SHEET_RUN: SheetRunHook = run_on_sheet;

/// Runs `pipeline` on its sheet `name` (created when absent) in the default sheets
/// database, with the inputs `given` (decoded on `checked`); the answer, with the sheet, and
/// the exit status: 0, 1 when a node failed or a result could not be saved, 2 when the
/// sheet could not be opened.
fn run_on_sheet(
    pipeline: &Pipeline,
    name: &str,
    checked: &Pipeline,
    given: &Map<String, Json>,
) -> (CallAnswer, i32) {
    let fail = |error: &Error| {
        let answer = CallAnswer {
            pipeline: pipeline.name().to_string(),
            error: Some(error_chain(error)),
            ..CallAnswer::default()
        };
        (answer, 2)
    };
    let store = match SheetStore::open_default() {
        Ok(store) => store,
        Err(e) => return fail(&e),
    };
    let (sheet, created) = match open_or_create(&store, pipeline, name) {
        Ok(opened) => opened,
        Err(e) => return fail(&e),
    };
    if let Err(e) = sheet.store_call_inputs(checked, given) {
        return fail(&e);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(&Error::Io {
                context: "starting a runtime".into(),
                source: e,
            })
        }
    };
    let started = std::time::Instant::now();
    // The sheet's run waits for its results to be committed (and the cache's writes
    // flushed) and reports what could not be saved.
    let answer = runtime
        .block_on(sheet.run(Scope::All))
        .and_then(|report| sheet.pipeline().answer(&report));
    let mut answer = match answer {
        Ok(answer) => answer,
        Err(e) => return fail(&e),
    };
    answer.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    answer.sheet = Some(SheetUsed {
        name: sheet.name().to_string(),
        created,
        location: store.location().to_string(),
    });
    let code = if answer.failed.is_empty() && answer.unsaved.is_empty() {
        0
    } else {
        1
    };
    (answer, code)
}

/// The pipeline's sheet `name`, and whether it was created now.
fn open_or_create(
    store: &SheetStore,
    pipeline: &Pipeline,
    name: &str,
) -> Result<(Sheet, bool), Error> {
    let existed = store
        .list(pipeline.name())?
        .iter()
        .any(|info| info.name == name);
    let sheet = store.open_or_create(pipeline, name)?;
    Ok((sheet, !existed))
}

impl Sheet {
    /// Stores the call inputs named in `given` in this sheet, as decoded on `checked` (a
    /// workspace of the same pipeline whose inputs were set from them): what a call on a
    /// sheet (`cargo daggr run --sheet`, `POST /api/call?sheet=`) keeps.
    pub(crate) fn store_call_inputs(
        &self,
        checked: &Pipeline,
        given: &Map<String, Json>,
    ) -> Result<(), Error> {
        checked
            .call_inputs()
            .into_iter()
            .filter(|input| given.contains_key(&input.name))
            .try_for_each(
                |input| match checked.constant_value(input.node, &input.port)? {
                    Some(value) => self.set_constant_value(&input.name, &input.port, value),
                    None => Ok(()),
                },
            )
    }
}
