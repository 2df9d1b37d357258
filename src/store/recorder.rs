//! The recorder: a consumer of events on its own thread, behind a bounded
//! queue; a commit at least once a second, fsync'd.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, params};

use super::codec::DeltaState;
use super::{FLUSH_EVERY, FORMAT_VERSION, KEYFRAME_EVERY, QUEUE_DEPTH, SCHEMA, kind_name, sidecar};
use crate::event::{Event, Nanos};
use crate::header::Header;

/// How long the recorder lets events gather after writing some.
const GATHER: Duration = Duration::from_millis(50);

/// How long the recorder may stall (a full queue, a close that does not
/// finish) before the session treats it as failed.
const STALL_LIMIT: Duration = Duration::from_secs(10);

enum Command {
    Event(Box<Event>),
    Close,
}

/// The recorder: a consumer of events on its own thread, behind a bounded queue.
pub struct Recorder {
    path: PathBuf,
    tx: SyncSender<Command>,
    thread: Option<JoinHandle<Result<()>>>,
    /// The latest session time in a committed transaction: what a reader
    /// finds in the file whatever happens next.
    committed: Arc<AtomicU64>,
    /// Held (flock, exclusive) while this recorder may still write: a
    /// replay following the file tells a writer that is gone (killed,
    /// crashed; the kernel lets go of the lock) from one that is quiet.
    _writing: super::WriterLock,
}

/// A recording is never overwritten: an error naming `path` if it exists.
pub fn refuse_existing(path: &Path) -> Result<()> {
    if path.exists() {
        bail!(
            "{} exists already; a recording is never overwritten",
            path.display()
        );
    }
    Ok(())
}

impl Recorder {
    pub fn create(path: &Path, header: &Header) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        refuse_existing(path)?;
        let conn = match create_file(path, header) {
            Ok(conn) => conn,
            Err(e) => {
                // No half-made recording (a full disk fails here too).
                for leftover in [
                    path.to_path_buf(),
                    sidecar(path, "-wal"),
                    sidecar(path, "-shm"),
                ] {
                    let _ = std::fs::remove_file(leftover);
                }
                return Err(e.context(format!("creating the recording {}", path.display())));
            }
        };
        let writing = super::hold_writer_lock(path)
            .with_context(|| format!("locking the recording {}", path.display()))?;
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let shown = path.display().to_string();
        let committed = Arc::new(AtomicU64::new(0));
        let thread_committed = committed.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                write_loop(conn, rx, &thread_committed)
                    .with_context(|| format!("recording to {shown}"))
            })?;
        Ok(Recorder {
            path: path.to_path_buf(),
            tx,
            thread: Some(thread),
            committed,
            _writing: writing,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The latest session time the file holds for certain.
    pub fn committed_until(&self) -> Nanos {
        self.committed.load(Ordering::Relaxed)
    }

    /// Queues an event. An error means the recorder has stopped; `close` says why.
    pub fn record(&self, event: Event) -> Result<()> {
        self.send(Command::Event(Box::new(event)))
    }

    /// Queues a command, waiting at most `STALL_LIMIT` for room: a disk
    /// that stops answering must not freeze the session's front end.
    fn send(&self, command: Command) -> Result<()> {
        let mut command = command;
        let deadline = Instant::now() + STALL_LIMIT;
        loop {
            match self.tx.try_send(command) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => {
                    bail!("the recorder of {} has stopped", self.path.display())
                }
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    command = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => bail!(
                    "the recorder of {} has not kept up for {} s (its disk does not answer)",
                    self.path.display(),
                    STALL_LIMIT.as_secs()
                ),
            }
        }
    }

    /// Writes what is queued, commits and closes the file; gives up after
    /// `STALL_LIMIT` on a disk that does not answer (what was committed
    /// stays readable).
    pub fn close(mut self) -> Result<()> {
        let _ = self.send(Command::Close);
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + STALL_LIMIT;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                bail!(
                    "{} could not be closed within {} s (its disk does not answer); \
                     what was committed stays readable",
                    self.path.display(),
                    STALL_LIMIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the recorder thread panicked"))?
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.send(Command::Close);
        let _ = self.join();
    }
}

struct WriteState {
    delta: DeltaState,
    records_since_keyframe: u64,
    blob: Vec<u8>,
}

fn create_file(path: &Path, header: &Header) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: each once-a-second commit is fsync'd, so power loss keeps it too.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('format_version', ?1), ('header', ?2)",
        params![FORMAT_VERSION.to_string(), serde_json::to_string(header)?],
    )?;
    Ok(conn)
}

fn write_loop(mut conn: Connection, rx: Receiver<Command>, committed: &AtomicU64) -> Result<()> {
    let mut state = WriteState {
        delta: DeltaState::default(),
        records_since_keyframe: KEYFRAME_EVERY,
        blob: Vec::with_capacity(4096),
    };
    loop {
        let deadline = Instant::now() + FLUSH_EVERY;
        let tx = conn.transaction()?;
        let mut closing = false;
        let mut latest = committed.load(Ordering::Relaxed);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let mut next = match rx.recv_timeout(wait) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closing = true;
                    break;
                }
            };
            // That, what came meanwhile, then a pause for more: a wake-up
            // per event cost more than writing it (the queue holds far
            // more than a pause's worth). A sender gone is seen above.
            while let Some(command) = next {
                match command {
                    Command::Event(event) => {
                        write_event(&tx, &mut state, &event)?;
                        latest = latest.max(event.t().unwrap_or(0));
                    }
                    Command::Close => {
                        closing = true;
                        break;
                    }
                }
                next = rx.try_recv().ok();
            }
            if closing {
                break;
            }
            std::thread::sleep(GATHER.min(deadline.saturating_duration_since(Instant::now())));
        }
        tx.commit()?;
        committed.store(latest, Ordering::Relaxed);
        if closing {
            // Folds the WAL back so that a closed recording is one file.
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            return conn.close().map_err(|(_, e)| e.into());
        }
    }
}

fn write_event(
    tx: &rusqlite::Transaction<'_>,
    state: &mut WriteState,
    event: &Event,
) -> Result<()> {
    match event {
        Event::SeriesDefined(def) => {
            tx.prepare_cached(
                "INSERT INTO series(id, source, metric, unit, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                def.id,
                def.source,
                def.metric,
                def.unit,
                kind_name(def.kind)
            ])?;
        }
        Event::Sample(sample) => {
            let keyframe = state.records_since_keyframe >= KEYFRAME_EVERY;
            if keyframe {
                state.delta.reset();
                state.records_since_keyframe = 0;
            }
            state.records_since_keyframe += 1;
            state.delta.encode(&sample.values, &mut state.blob);
            tx.prepare_cached("INSERT INTO ticks(t, keyframe, data) VALUES (?1, ?2, ?3)")?
                .execute(params![sample.t as i64, keyframe, state.blob])?;
        }
        other => {
            let body = serde_json::to_string(other)?;
            let t = other.t().unwrap_or(0);
            tx.prepare_cached("INSERT INTO events(t, kind, body) VALUES (?1, ?2, ?3)")?
                .execute(params![t as i64, other.kind(), body])?;
        }
    }
    Ok(())
}
