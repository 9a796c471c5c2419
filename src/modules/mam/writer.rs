//! The archive's writer: routing hands it rows through a bounded channel and moves on; one
//! task writes whatever has queued up, many rows per transaction. So a chat message never
//! waits for the database, and the database sees one commit per batch, not per message.
//!
//! A full channel makes the sender's routing wait for room (back-pressure, as a MUC room's
//! queue does), never drops. `flush` returns once everything queued before it is written:
//! archive queries call it so they see the messages just routed, and the server calls it on
//! a graceful stop before closing storage, so nothing queued is lost.

use tokio::sync::{mpsc, oneshot};

use crate::storage::Storage;
use crate::storage::archive::{ArchiveRow, Retraction};
use crate::storage::room_archive::RoomArchiveRow;

/// Rows waiting for the writer at most; past it senders wait.
const QUEUE: usize = 8192;
/// Rows written in one transaction at most.
const BATCH: usize = 512;
/// Tries of one batch; the waits between them grow (0.2 s, 0.4 s, ...: 9 s in all, longer
/// than a lock another SQLite connection holds within its busy timeout).
const ATTEMPTS: u32 = 10;

enum Job {
    Row(ArchiveRow),
    RoomRow(RoomArchiveRow),
    /// Applied after the rows queued before it (the message it names is written first).
    Retract(Retraction),
    /// Answered once every job before it is done.
    Flush(oneshot::Sender<()>),
}

/// The sending side; the task ends when it is dropped.
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on `storage`.
    pub fn start(storage: Storage) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(storage, rx));
        Writer { tx }
    }

    /// Queues a row (waits while the queue is full).
    pub async fn append(&self, row: ArchiveRow) {
        if self.tx.send(Job::Row(row)).await.is_err() {
            tracing::error!("archive writer stopped; message not archived");
        }
    }

    /// Queues a row of a room's archive (waits while the queue is full).
    pub async fn append_room(&self, row: RoomArchiveRow) {
        if self.tx.send(Job::RoomRow(row)).await.is_err() {
            tracing::error!("archive writer stopped; room message not archived");
        }
    }

    /// Queues a XEP-0424 retraction (waits while the queue is full).
    pub async fn retract(&self, retraction: Retraction) {
        if self.tx.send(Job::Retract(retraction)).await.is_err() {
            tracing::error!("archive writer stopped; retraction not applied");
        }
    }

    /// Waits until every row queued before this call is written (or failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(storage: Storage, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    let mut rows = Vec::with_capacity(BATCH);
    let mut room_rows = Vec::new();
    let mut flushed = Vec::new();
    let mut retractions = Vec::new();
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        for job in jobs.drain(..) {
            match job {
                Job::Row(row) => rows.push(row),
                Job::RoomRow(row) => room_rows.push(row),
                Job::Retract(r) => retractions.push(r),
                Job::Flush(done) => flushed.push(done),
            }
        }
        write(&storage, &rows).await;
        rows.clear();
        write_rooms(&storage, &room_rows).await;
        room_rows.clear();
        for r in retractions.drain(..) {
            retract(&storage, &r).await;
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Turns the retracted messages into tombstones stamped now.
async fn retract(storage: &Storage, r: &Retraction) {
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match storage
        .archive_retract(r, |text| super::policy::tombstone(text, &stamp))
        .await
    {
        Ok(n) => tracing::debug!(messages = n, "archived messages retracted"),
        Err(e) => tracing::error!(error = %e, "archive retraction failed"),
    }
}

/// One transaction for the batch; tried again after a failure (a busy or locked database)
/// up to [`ATTEMPTS`] times, then given up with an error in the log.
async fn write(storage: &Storage, rows: &[ArchiveRow]) {
    if rows.is_empty() {
        return;
    }
    for attempt in 1..=ATTEMPTS {
        match storage.archive_append(rows).await {
            Ok(_) => {
                crate::metrics::module_event("mam", "batch_written");
                return;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, rows = rows.len(), "archive write failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => {
                crate::metrics::module_event("mam", "batch_lost");
                tracing::error!(error = %e, rows = rows.len(), "archive write failed; messages lost");
            }
        }
    }
}

/// The rooms' rows of a batch: one transaction, as [`write`].
async fn write_rooms(storage: &Storage, rows: &[RoomArchiveRow]) {
    if rows.is_empty() {
        return;
    }
    for attempt in 1..=ATTEMPTS {
        match storage.room_archive_append(rows).await {
            Ok(_) => {
                crate::metrics::module_event("mam", "room_batch_written");
                return;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, rows = rows.len(), "room archive write failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => {
                crate::metrics::module_event("mam", "room_batch_lost");
                tracing::error!(error = %e, rows = rows.len(), "room archive write failed; messages lost");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> ArchiveRow {
        ArchiveRow {
            host: "example.org".into(),
            username: "alice".into(),
            id,
            peer: "bob@example.org".into(),
            peer_resource: String::new(),
            outgoing: false,
            origin_id: String::new(),
            body: id.to_string(),
            stanza: format!("<message xmlns='jabber:client'><body>{id}</body></message>"),
        }
    }

    /// Queued rows are not written by the time `append` returns (routing does not wait),
    /// but all of them are once `flush` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_waits_for_every_row_queued_before_it() {
        let storage = Storage::open("sqlite::memory:").await.unwrap();
        storage.create_user("example.org", "alice", &[]).await.unwrap();
        let writer = Writer::start(storage.clone());
        for id in 1..=3000 {
            writer.append(row(id)).await;
        }
        writer.flush().await;
        let page = storage
            .archive_query(
                "example.org",
                "alice",
                &Default::default(),
                crate::storage::archive::PageFrom::Last,
                1,
            )
            .await
            .unwrap();
        assert_eq!(page.count, 3000);
        assert_eq!(page.messages[0].id, 3000);
    }
}
