//! Pushing the results already in the local directory to the shared store
//! ([`Cache::push_shared`]): a shared store only receives what is computed after it was
//! set up, so a team that starts sharing, or a machine that ran offline, uploads what it
//! has this way.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::Serialize;
use ssri::Integrity;

use super::gc::collect_blob_refs;
use super::shared::{encode_record_object, record_name, upload_one, Upload, UploadFailure};
use super::{Cache, CacheKey};
use crate::value::media::Blob;
use crate::Error;

/// Requests to the shared store at once, as the background uploads do.
const AT_ONCE: usize = 8;

/// What [`Cache::push_shared`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// Results uploaded (each with the media it names).
    pub uploaded: usize,
    /// Results the store already had.
    pub already_there: usize,
    /// Results in the local directory that could not be read back (damaged): not pushed.
    pub unreadable: usize,
    /// Bytes uploaded (records and media).
    pub bytes: u64,
    /// Uploads that failed (the results stay local; pushing again retries them).
    pub failed: Vec<UploadFailure>,
}

impl Cache {
    /// Uploads every result of the local directory that the shared store does not have,
    /// with the media it names (media first, so a result in the store never names media
    /// that is not). Queued writes are flushed first. Results of daggr versions before the
    /// packed record log (one cacache index entry each) have no stored key preimage and
    /// are not pushed. Without a shared store, nothing is pushed.
    pub fn push_shared(&self) -> Result<PushReport, Error> {
        self.flush();
        let Some(shared) = &self.0.shared else {
            return Ok(PushReport::default());
        };
        let mut keys = self.0.records.lock().unwrap().keys();
        keys.sort_unstable();
        let report = Mutex::new(PushReport::default());
        let next = Mutex::new(keys.into_iter());
        let push_next = || loop {
            let Some(key) = next.lock().unwrap().next() else {
                return;
            };
            let outcome = self.push_one(&*shared.store, &key);
            let mut report = report.lock().unwrap();
            match outcome {
                Pushed::Uploaded(bytes) => {
                    report.uploaded += 1;
                    report.bytes += bytes;
                }
                Pushed::AlreadyThere => report.already_there += 1,
                Pushed::Unreadable => report.unreadable += 1,
                Pushed::Failed(failure) => report.failed.push(failure),
            }
        };
        std::thread::scope(|scope| {
            for _ in 0..AT_ONCE {
                scope.spawn(push_next);
            }
        });
        let mut report = report.into_inner().unwrap();
        report.failed.sort_by(|a, b| a.object.cmp(&b.object));
        Ok(report)
    }

    /// Pushes one result, unless the store has it.
    fn push_one(&self, store: &dyn super::SharedStore, key: &CacheKey) -> Pushed {
        let name = record_name(key);
        match store.exists(&name) {
            Ok(true) => return Pushed::AlreadyThere,
            Ok(false) => {}
            Err(e) => return Pushed::failed(&name, &e),
        }
        let Some(Ok((preimage, record))) = self.read_packed(key) else {
            return Pushed::Unreadable;
        };
        let mut names = HashSet::new();
        collect_blob_refs(&record, &mut names);
        let mut blobs = Vec::with_capacity(names.len());
        for sri in names {
            let Ok(integrity) = sri.parse::<Integrity>() else {
                return Pushed::Unreadable;
            };
            // Read back verified: damaged media is not pushed.
            match cacache::read_hash_sync(self.dir(), &integrity) {
                Ok(bytes) => blobs.push(Blob {
                    integrity,
                    bytes: bytes.into(),
                }),
                Err(_) => return Pushed::Unreadable,
            }
        }
        let object = encode_record_object(&preimage, &record);
        let bytes = object.len() as u64 + blobs.iter().map(|b| b.bytes.len() as u64).sum::<u64>();
        let upload = Upload {
            name,
            object: Some(object),
            blobs,
            repair: false,
        };
        match upload_one(store, &upload) {
            Ok(()) => Pushed::Uploaded(bytes),
            Err(error) => Pushed::Failed(UploadFailure {
                object: upload.name,
                error,
            }),
        }
    }
}

/// How pushing one result went.
enum Pushed {
    Uploaded(u64),
    AlreadyThere,
    Unreadable,
    Failed(UploadFailure),
}

impl Pushed {
    fn failed(object: &str, error: &Error) -> Pushed {
        Pushed::Failed(UploadFailure {
            object: object.to_string(),
            error: crate::error::error_chain(error),
        })
    }
}
