//! One thread owns the storage backend. Ingest requests that arrive together are stored in one
//! transaction (one fsync for many batches); every other request runs in arrival order.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::storage::{IngestBatch, IngestOutcome, Storage, StorageError};

/// Most batches stored in one transaction.
const MAX_GROUP: usize = 256;

type Query = Box<dyn FnOnce(&mut dyn Storage) + Send>;

enum Job {
    Ingest(IngestBatch, oneshot::Sender<Result<IngestOutcome, String>>),
    Query(Query),
}

/// A handle to the storage thread. Cheap to clone.
#[derive(Clone)]
pub struct StorageHandle {
    tx: mpsc::Sender<Job>,
}

impl StorageHandle {
    /// Starts the storage thread around `storage`.
    pub fn start(storage: impl Storage) -> std::io::Result<StorageHandle> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("starling-server-storage".into())
            .spawn(move || run(Box::new(storage), rx))?;
        Ok(StorageHandle { tx })
    }

    /// Stores a batch, grouped with whatever else is waiting.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestOutcome, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Ingest(batch, reply))
            .map_err(|_| "storage thread stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "storage thread stopped".to_owned())?
    }

    /// Runs `f` on the storage thread and returns its result.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Storage) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, String> {
        self.submit(f)?
            .await
            .map_err(|_| "storage thread stopped".to_owned())?
    }

    /// Blocking variant of [`query`](Self::query), for code outside the async runtime.
    pub fn query_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Storage) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, String> {
        self.submit(f)?
            .blocking_recv()
            .map_err(|_| "storage thread stopped".to_owned())?
    }

    /// Queues `f` and returns the channel its result will arrive on.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Storage) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, String>>, String> {
        let (reply, answer) = oneshot::channel();
        let job: Query = Box::new(move |storage| {
            let _ = reply.send(f(storage).map_err(|e| e.to_string()));
        });
        self.tx
            .send(Job::Query(job))
            .map_err(|_| "storage thread stopped".to_owned())?;
        Ok(answer)
    }
}

fn run(mut storage: Box<dyn Storage>, rx: mpsc::Receiver<Job>) {
    let mut pending: Option<Job> = None;
    loop {
        let job = match pending.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Query(f) => f(storage.as_mut()),
            Job::Ingest(batch, reply) => {
                let mut group = vec![batch];
                let mut replies = vec![reply];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Job::Ingest(batch, reply)) => {
                            group.push(batch);
                            replies.push(reply);
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match storage.ingest(&group) {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(e) => {
                        log::warn!("storage failed for a group of {} batches: {e}", group.len());
                        for reply in replies {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        }
    }
}
